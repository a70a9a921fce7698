package actors

import "strings"

// retainedStore holds the retained messages in a trie of topic levels, so
// that a subscription finds its retained messages by walking only the
// branches its filter can match, instead of testing every retained topic.
// Owned by the topics actor.
type retainedStore struct {
	root  rnode
	n     int // messages stored
	bytes int // their payload bytes
}

type rnode struct {
	children map[string]*rnode
	msg      *Message
}

// get returns the message retained on topic, or nil.
func (s *retainedStore) get(topic string) *Message {
	n := &s.root
	for level := range strings.SplitSeq(topic, "/") {
		if n = n.children[level]; n == nil {
			return nil
		}
	}
	return n.msg
}

// set stores m on topic, replacing what was there.
func (s *retainedStore) set(topic string, m *Message) {
	n := &s.root
	for level := range strings.SplitSeq(topic, "/") {
		c := n.children[level]
		if c == nil {
			if n.children == nil {
				n.children = map[string]*rnode{}
			}
			c = &rnode{}
			n.children[level] = c
		}
		n = c
	}
	if n.msg != nil {
		s.bytes -= len(n.msg.Payload)
	} else {
		s.n++
	}
	n.msg = m
	s.bytes += len(m.Payload)
}

// del removes the message on topic and prunes the branch it leaves empty.
func (s *retainedStore) del(topic string) {
	levels := strings.Split(topic, "/")
	path := make([]*rnode, 0, len(levels)+1)
	n := &s.root
	path = append(path, n)
	for _, level := range levels {
		if n = n.children[level]; n == nil {
			return
		}
		path = append(path, n)
	}
	if n.msg == nil {
		return
	}
	s.n--
	s.bytes -= len(n.msg.Payload)
	n.msg = nil
	for i := len(levels) - 1; i >= 0; i-- {
		c := path[i+1]
		if c.msg != nil || len(c.children) > 0 {
			break
		}
		delete(path[i].children, levels[i])
	}
}

// match calls fn for every message whose topic matches filter (a valid,
// non-shared filter). A leading wildcard does not match topics beginning
// with '$' [MQTT-4.7.2-1]. fn must not change the store.
func (s *retainedStore) match(filter string, fn func(*Message)) {
	s.root.match(strings.Split(filter, "/"), true, fn)
}

func (n *rnode) match(levels []string, first bool, fn func(*Message)) {
	if len(levels) == 0 {
		if n.msg != nil {
			fn(n.msg)
		}
		return
	}
	switch level := levels[0]; level {
	case "#":
		// "#" matches the parent level too ("a/#" matches "a")
		// [MQTT-4.7.1-2], and everything below.
		if !first && n.msg != nil {
			fn(n.msg)
		}
		for name, c := range n.children {
			if first && strings.HasPrefix(name, "$") {
				continue
			}
			c.all(fn)
		}
	case "+":
		for name, c := range n.children {
			if first && strings.HasPrefix(name, "$") {
				continue
			}
			c.match(levels[1:], false, fn)
		}
	default:
		if c := n.children[level]; c != nil {
			c.match(levels[1:], false, fn)
		}
	}
}

// all calls fn for every message at or below n.
func (n *rnode) all(fn func(*Message)) {
	if n.msg != nil {
		fn(n.msg)
	}
	for _, c := range n.children {
		c.all(fn)
	}
}
