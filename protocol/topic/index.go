package topic

import (
	"hash/maphash"
	"slices"
	"strings"
	"sync/atomic"
	"unique"
)

// Index maps topic filters to subscriptions. A subscription is identified by
// its filter string and a key K (for instance a session id); it carries a
// value V (for instance QoS, No Local, Retain As Published and the
// subscription identifier), which a later Subscribe with the same filter and
// key replaces. Keys must equal themselves (no NaN, no interface holding an
// uncomparable value).
//
// Concurrency: exactly one goroutine, the owner, calls Subscribe,
// Unsubscribe and Batch; they never block. Any goroutine may call Snapshot at
// any time and match against the result without locks; a Snapshot never
// changes once published.
//
// Changes copy only the nodes on the changed path (path copying, with the
// child and subscriber maps themselves persistent hash tries), so a change
// costs O(levels × log32 fan-out), whatever the index size, and leaves
// earlier snapshots intact. Inside a Batch, nodes created since the last
// publish are changed in place, which makes bulk loading as cheap as
// building a mutable trie.
//
// The zero Index is not usable; call New.
type Index[K comparable, V any] struct {
	root  *node[K, V] // working tree; equal to the published one outside Batch
	n     int         // subscriptions in root
	epoch uint64      // nodes with this epoch are unpublished and writable
	batch int         // nesting depth of Batch
	dirty bool        // root differs from the published snapshot
	seed  maphash.Seed
	mask  uint64 // applied to every hash; all ones except in collision tests
	snap  atomic.Pointer[Snapshot[K, V]]
}

// Snapshot is an immutable view of an Index at one publish. All its methods
// are safe for concurrent use by any number of goroutines, hold no lock and
// do not allocate. Keeping a Snapshot keeps its nodes reachable.
type Snapshot[K comparable, V any] struct {
	root *node[K, V]
	n    int
	seed maphash.Seed
	mask uint64
}

// Group is the set of members of one shared subscription: the sessions that
// subscribed to "$share/{Name}/{Filter}". A published Group is immutable; a
// change to its members publishes a new Group value, so the broker keys any
// per-group state (a round-robin cursor) by Name and Filter, not by pointer.
//
// Members are kept in a copy-on-write list, so changing a group costs
// O(members): shared groups are meant for tens of workers, not for millions
// of subscribers (ordinary subscriptions of one filter are a hash trie).
type Group[K comparable, V any] struct {
	epoch   uint64
	name    string
	filter  string
	members []member[K, V]
}

type member[K comparable, V any] struct {
	key K
	val V
}

// Name returns the share name.
func (g *Group[K, V]) Name() string { return g.name }

// Filter returns the inner topic filter, without "$share/{Name}/".
func (g *Group[K, V]) Filter() string { return g.filter }

// Len returns the number of members, at least 1.
func (g *Group[K, V]) Len() int { return len(g.members) }

// At returns member i, 0 <= i < Len(). Members keep the order in which they
// joined.
func (g *Group[K, V]) At(i int) (key K, val V) {
	m := &g.members[i]
	return m.key, m.val
}

// node is the trie node of one filter level. kids holds the literal
// children, plus the '+' child and hash the '#' child (a node without
// children of its own). subs and groups hold the subscriptions whose filter
// ends at this node: ordinary ones by key, shared groups sorted by name.
//
// Single-child chains are collapsed (path compression): ext holds the
// literal levels below the one that leads to the node, each preceded by '/'
// ("/temp", "/a/b"; "/" is one empty level), and the node stands at the end
// of them. The levels a node skips hold nothing else: no subscription, no
// '+' or '#' child and no other literal child. Every node but the root that
// has a single literal child and nothing else is merged with that child, so
// a filter such as "site/N/device/M/temp" ends two nodes below "device"
// instead of three, and a match takes one cache miss less.
//
// The subscriptions live in the node rather than in a leaf object of their
// own, and single entries live inline in their hmap, so that reaching the
// subscriber of "site/N/device/M/temp" from node device touches node M/temp
// only.
//
// ext is interned: the runs of a large index repeat ("/temp" below every
// device), so they take one string, which stays in cache, and the node only
// a pointer. The fields a lookup reads first (kids, ext, plus) share the
// first cache line of the node.
type node[K comparable, V any] struct {
	kids   hmap[string, *node[K, V]]
	ext    unique.Handle[string] // zero if none
	plus   *node[K, V]
	hash   *node[K, V]
	subs   hmap[K, V]
	groups []*Group[K, V]
	epoch  uint64
}

// New returns an empty Index. Its Snapshot is usable at once.
func New[K comparable, V any]() *Index[K, V] {
	return newIndex[K, V](^uint64(0))
}

// newIndex lets tests shrink every hash to a few bits to exercise collisions.
func newIndex[K comparable, V any](mask uint64) *Index[K, V] {
	x := &Index[K, V]{epoch: 1, seed: maphash.MakeSeed(), mask: mask}
	x.dirty = true
	x.publish()
	return x
}

// Snapshot returns the latest published view. Any goroutine may call it; it
// does not block or allocate.
func (x *Index[K, V]) Snapshot() *Snapshot[K, V] { return x.snap.Load() }

// Subscribe adds the subscription (filter, key) with value val, or replaces
// the value if it exists, and reports whether it was added. A filter
// "$share/{group}/{inner}" adds key as a member of that shared group on
// inner. It returns an error matching ErrInvalidFilter, and changes nothing,
// if the filter is not valid (see ValidFilter).
//
// Owner only. Outside Batch the change is published before Subscribe
// returns: a Snapshot taken afterwards, by any goroutine, matches it (so the
// broker subscribes before it sends SUBACK or retained messages). The index
// keeps parts of filter.
func (x *Index[K, V]) Subscribe(filter string, key K, val V) (added bool, err error) {
	group, inner, shared, err := parseShared(filter)
	if err != nil {
		return false, err
	}
	var op func(*node[K, V]) (*node[K, V], bool)
	if shared {
		op = func(t *node[K, V]) (*node[K, V], bool) {
			t = x.editNode(t)
			i, found := findGroup(t.groups, group)
			if !found {
				g := &Group[K, V]{epoch: x.epoch, name: group, filter: inner, members: []member[K, V]{{key, val}}}
				t.groups = slices.Insert(t.groups, i, g)
				added = true
				return t, true
			}
			g := x.editGroup(t.groups[i])
			t.groups[i] = g
			if j := g.find(key); j >= 0 {
				g.members[j].val = val
			} else {
				g.members = append(g.members, member[K, V]{key, val})
				added = true
			}
			return t, true
		}
	} else {
		op = func(t *node[K, V]) (*node[K, V], bool) {
			t = x.editNode(t)
			added = t.subs.set(x.epoch, x.hashKey(key), key, val, x.hashKey)
			return t, true
		}
		inner = filter
	}
	x.root, _ = x.update(x.root, inner, op)
	if added {
		x.n++
	}
	x.changed()
	return added, nil
}

// Unsubscribe removes the subscription (filter, key), or the membership of
// key in the shared group a "$share/..." filter names, and reports whether it
// existed. Nodes left empty are pruned. It returns an error matching
// ErrInvalidFilter if the filter is not valid.
//
// Owner only. Outside Batch the change is published before it returns.
func (x *Index[K, V]) Unsubscribe(filter string, key K) (removed bool, err error) {
	group, inner, shared, err := parseShared(filter)
	if err != nil {
		return false, err
	}
	var op func(*node[K, V]) (*node[K, V], bool)
	if shared {
		op = func(t *node[K, V]) (*node[K, V], bool) {
			if t == nil {
				return nil, false
			}
			i, found := findGroup(t.groups, group)
			if !found {
				return t, false
			}
			j := t.groups[i].find(key)
			if j < 0 {
				return t, false
			}
			t = x.editNode(t)
			if len(t.groups[i].members) == 1 {
				t.groups = slices.Delete(t.groups, i, i+1)
			} else {
				g := x.editGroup(t.groups[i])
				g.members = slices.Delete(g.members, j, j+1)
				t.groups[i] = g
			}
			return t, true
		}
	} else {
		op = func(t *node[K, V]) (*node[K, V], bool) {
			if t == nil {
				return nil, false
			}
			h := x.hashKey(key)
			if _, ok := t.subs.get(h, key); !ok {
				return t, false
			}
			t = x.editNode(t)
			t.subs.del(x.epoch, h, key)
			return t, true
		}
		inner = filter
	}
	x.root, removed = x.update(x.root, inner, op)
	if removed {
		x.n--
		x.changed()
	}
	return removed, nil
}

// Batch calls fn, in which the owner makes any number of Subscribe and
// Unsubscribe calls, and publishes their combined result once when fn
// returns (or panics). Snapshots taken while fn runs show the state before
// the batch. Batches nest; the outermost one publishes. Owner only.
//
// Use it to load many subscriptions at once (a restart rebuilding the index,
// a SUBSCRIBE with many filters): nodes created inside the batch are
// changed in place instead of copied.
func (x *Index[K, V]) Batch(fn func()) {
	x.batch++
	defer func() {
		x.batch--
		if x.batch == 0 {
			x.publish()
		}
	}()
	fn()
}

func (x *Index[K, V]) changed() {
	x.dirty = true
	if x.batch == 0 {
		x.publish()
	}
}

// publish makes the working tree visible and freezes it: from now on every
// node of it is copied before a change.
func (x *Index[K, V]) publish() {
	if !x.dirty {
		return
	}
	x.snap.Store(&Snapshot[K, V]{root: x.root, n: x.n, seed: x.seed, mask: x.mask})
	x.epoch++
	x.dirty = false
}

func (x *Index[K, V]) hashKey(k K) uint64 { return maphash.Comparable(x.seed, k) & x.mask }

func (x *Index[K, V]) hashLevel(s string) uint64 { return maphash.String(x.seed, s) & x.mask }

// update applies op to the node that ends the levels of rest below n (n ==
// nil stands for an empty node) and returns n's replacement, nil if it
// became empty. op gets that node (nil if absent) and returns its edited
// replacement, or false if it changes nothing; then update returns n, false
// and copies nothing (nor changes anything in place). rest is a valid
// filter; n stands at the end of its own ext.
func (x *Index[K, V]) update(n *node[K, V], rest string, op func(*node[K, V]) (*node[K, V], bool)) (*node[K, V], bool) {
	level, tail, more := cut(rest)
	var child *node[K, V]
	var h uint64
	switch level {
	case "+":
		if n != nil {
			child = n.plus
		}
	case "#": // always the last level of a valid filter
		if n != nil {
			child = n.hash
		}
	default:
		h = x.hashLevel(level)
		if n != nil {
			child, _ = n.kids.get(h, level)
		}
	}
	var next *node[K, V]
	var ok bool
	at := child // the node at the end of level, child or a split of it
	if child != nil && child.ext != noExt {
		if t, m, skipped := skipExt(child.ext.Value(), tail, more); skipped {
			tail, more = t, m
		} else {
			// The filter ends or branches off inside child's run of
			// levels: split its first level off into a node of its own.
			at = x.split(child)
		}
	}
	if more {
		next, ok = x.update(at, tail, op)
	} else {
		next, ok = op(at)
	}
	if !ok {
		return n, false
	}
	next = x.compress(next.pruned())
	n = x.editNode(n)
	switch {
	case level == "+":
		n.plus = next
	case level == "#":
		n.hash = next
	case next == nil:
		n.kids.del(x.epoch, h, level)
	case next != child: // an unchanged pointer was edited in place
		n.kids.set(x.epoch, h, level, next, x.hashLevel)
	}
	return n.pruned(), true
}

// skipExt consumes the levels of ext ("/a/b") from rest, the levels after
// the current one (more reports whether there are any), and returns what
// follows them, or false if rest does not start with exactly those levels.
func skipExt[S text](ext string, rest S, more bool) (S, bool, bool) {
	e := ext[1:]
	if !more || len(rest) < len(e) || string(rest[:len(e)]) != e {
		return rest, more, false
	}
	if len(rest) == len(e) {
		return rest[len(e):], false, true
	}
	if rest[len(e)] != '/' {
		return rest, more, false
	}
	return rest[len(e)+1:], true, true
}

// split returns a new node standing at the start of c's ext, whose only
// child, by the first level of the ext, is a copy of c without that level.
// It changes nothing in place, since the caller may still drop the result.
func (x *Index[K, V]) split(c *node[K, V]) *node[K, V] {
	ext := c.ext.Value()
	first, _, _ := cut(ext[1:])
	d := x.copyNode(c)
	d.ext = makeExt(ext[1+len(first):]) // "" or the later levels
	p := &node[K, V]{epoch: x.epoch}
	p.kids.set(x.epoch, x.hashLevel(first), first, d, x.hashLevel)
	return p
}

// compress merges n, a child node, with its only literal child if n holds
// nothing else, and returns n's replacement. n's descendants are compressed
// already, so one merge suffices.
func (x *Index[K, V]) compress(n *node[K, V]) *node[K, V] {
	if n == nil || n.kids.n != 1 || n.plus != nil || n.hash != nil || n.subs.n != 0 || len(n.groups) != 0 {
		return n
	}
	c := x.editNode(n.kids.val)
	c.ext = makeExt(n.extString() + "/" + n.kids.key + c.extString())
	return c
}

// noExt is the ext of a node that has none.
var noExt unique.Handle[string]

func makeExt(ext string) unique.Handle[string] {
	if ext == "" {
		return noExt
	}
	return unique.Make(ext)
}

// extString returns the levels n skips, "" if none.
func (n *node[K, V]) extString() string {
	if n.ext == noExt {
		return ""
	}
	return n.ext.Value()
}

// editNode returns n if it is unpublished, else a writable copy; nil yields
// a new empty node.
func (x *Index[K, V]) editNode(n *node[K, V]) *node[K, V] {
	if n == nil {
		return &node[K, V]{epoch: x.epoch}
	}
	if n.epoch == x.epoch {
		return n
	}
	return x.copyNode(n)
}

// copyNode returns a writable copy of n.
func (x *Index[K, V]) copyNode(n *node[K, V]) *node[K, V] {
	c := *n
	c.epoch = x.epoch
	if len(n.groups) > 0 {
		c.groups = slices.Clone(n.groups) // the array is shared with the published node
	}
	return &c
}

func (x *Index[K, V]) editGroup(g *Group[K, V]) *Group[K, V] {
	if g.epoch == x.epoch {
		return g
	}
	c := *g
	c.epoch = x.epoch
	c.members = slices.Clone(g.members)
	return &c
}

// pruned returns nil for a node that holds nothing, else n.
func (n *node[K, V]) pruned() *node[K, V] {
	if n == nil || n.kids.n == 0 && n.plus == nil && n.hash == nil && n.subs.n == 0 && len(n.groups) == 0 {
		return nil
	}
	return n
}

func findGroup[K comparable, V any](groups []*Group[K, V], name string) (int, bool) {
	return slices.BinarySearchFunc(groups, name, func(g *Group[K, V], name string) int {
		return strings.Compare(g.name, name)
	})
}

func (g *Group[K, V]) find(key K) int {
	for i := range g.members {
		if g.members[i].key == key {
			return i
		}
	}
	return -1
}

// Len returns the number of subscriptions: every (filter, key) pair, each
// member of a shared group counting once.
func (s *Snapshot[K, V]) Len() int { return s.n }

// Match finds the subscriptions whose filter matches topic. It calls sub for
// every ordinary subscription and group for every shared subscription group
// (once per group and filter; the caller picks the member to deliver to).
// Either callback may be nil to skip that kind. A session with several
// matching subscriptions is reported once per subscription: the broker
// merges them (MQTT 5 section 3.3.4). The order of calls is unspecified.
//
// Matching follows Match: '+' takes one level (possibly empty), '#' any
// number including none, and filters starting with a wildcard do not match
// topics starting with '$' [MQTT-4.7.2-1]. topic should be a valid topic
// name (ValidName); the empty topic is treated as one empty level.
//
// Match does not allocate and does not retain topic. The callbacks run on
// the calling goroutine before Match returns; they must not retain the key
// or value beyond what their types allow, and may retain the Group, which
// is immutable.
func (s *Snapshot[K, V]) Match(topic []byte, sub func(key K, val V), group func(g *Group[K, V])) {
	root := s.root
	if root == nil {
		return
	}
	m := matcher[K, V]{topic: topic, seed: s.seed, mask: s.mask, sub: sub, group: group, hashed: -1}

	// The trie is walked breadth first, one edge (a level and the ext of
	// the node it leads to) at a time, so that the cache misses of
	// independent branches (the literal child, the '+' child) overlap
	// instead of following one another. The frontier lives on the stack;
	// nodes that do not fit are matched depth first.
	var bufA, bufB [frontierCap]hop[K, V]
	front, next := bufA[:0], bufB[:0]

	dollar := len(topic) > 0 && topic[0] == '$'
	if !dollar && root.hash != nil {
		m.visit(root.hash) // [MQTT-4.7.2-1] only for names not starting with '$'
	}
	level, rest, more := cut(topic)
	if root.kids.n != 0 {
		if c, _ := getLevel(&root.kids, m.hash(level, rest, more), level); c != nil {
			front = append(front, m.hop(c, rest, more))
		}
	}
	if !dollar && root.plus != nil { // [MQTT-4.7.2-1]
		front = append(front, m.hop(root.plus, rest, more))
	}
	// Invariant: each hop holds a node reached by the levels before its
	// ext, and the position of the levels after them.
	for len(front) > 0 {
		next = next[:0]
		for i := range front {
			n, rest, more := m.unhop(front[i])
			if n.ext != noExt {
				var ok bool
				if rest, more, ok = skipExt(n.ext.Value(), rest, more); !ok {
					continue
				}
			}
			if n.hash != nil {
				m.visit(n.hash) // '#' also matches the parent level [MQTT-4.7.1-2]
			}
			if !more {
				m.visit(n)
				continue
			}
			level, nextRest, nextMore := cut(rest)
			if n.kids.n != 0 {
				if c, _ := getLevel(&n.kids, m.hash(level, nextRest, nextMore), level); c != nil {
					next = m.push(next, c, nextRest, nextMore)
				}
			}
			if n.plus != nil {
				next = m.push(next, n.plus, nextRest, nextMore)
			}
		}
		front, next = next, front
	}
}

// frontierCap bounds the nodes matched per round breadth first: a topic
// level reaches at most one literal and one '+' child per node, so 16 covers
// 4 levels of '+' siblings before Match falls back to depth first.
const frontierCap = 16

// hop is a node of the frontier of Match and the position in the topic of
// the levels after it (see matcher.hop). It is kept small: the frontier
// buffers are zeroed on every Match.
type hop[K comparable, V any] struct {
	n   *node[K, V]
	pos int
}

type matcher[K comparable, V any] struct {
	topic  []byte
	seed   maphash.Seed
	mask   uint64
	sub    func(K, V)
	group  func(*Group[K, V])
	hashed int    // the end of the level last hashed in the topic, or -1
	h      uint64 // its hash
}

// hash returns the hash of level, followed in the topic by rest (both parts
// of it): each level is hashed once per Match, however many nodes look it
// up. The level ends len(rest)+1 bytes before the end of the topic, or at
// the end when rest is the empty tail of the last level.
func (m *matcher[K, V]) hash(level, rest []byte, more bool) uint64 {
	end := len(rest)
	if more {
		end++
	}
	if end != m.hashed {
		m.h, m.hashed = maphash.Bytes(m.seed, level)&m.mask, end
	}
	return m.h
}

// hop returns the hop of n followed by rest, a tail of the topic; more
// reports whether rest holds a level. Without one, the position is past the
// end of the topic.
func (m *matcher[K, V]) hop(n *node[K, V], rest []byte, more bool) hop[K, V] {
	pos := len(m.topic) - len(rest)
	if !more {
		pos = len(m.topic) + 1
	}
	return hop[K, V]{n, pos}
}

func (m *matcher[K, V]) unhop(h hop[K, V]) (n *node[K, V], rest []byte, more bool) {
	if h.pos > len(m.topic) {
		return h.n, m.topic[len(m.topic):], false
	}
	return h.n, m.topic[h.pos:], true
}

// push adds n to the frontier, or matches it at once if the frontier is full.
func (m *matcher[K, V]) push(front []hop[K, V], n *node[K, V], rest []byte, more bool) []hop[K, V] {
	if len(front) < cap(front) {
		return append(front, m.hop(n, rest, more))
	}
	m.match(n, rest, more)
	return front
}

// match visits n, reached by the levels before its ext and rest, depth
// first; more reports whether rest holds another level.
func (m *matcher[K, V]) match(n *node[K, V], rest []byte, more bool) {
	if n.ext != noExt {
		var ok bool
		if rest, more, ok = skipExt(n.ext.Value(), rest, more); !ok {
			return
		}
	}
	if n.hash != nil {
		m.visit(n.hash) // '#' also matches the parent level [MQTT-4.7.1-2]
	}
	if !more {
		m.visit(n)
		return
	}
	level, rest, more := cut(rest)
	if n.kids.n != 0 {
		if c, _ := getLevel(&n.kids, m.hash(level, rest, more), level); c != nil {
			m.match(c, rest, more)
		}
	}
	if n.plus != nil {
		m.match(n.plus, rest, more)
	}
}

// visit reports the subscriptions of a filter ending at n.
func (m *matcher[K, V]) visit(n *node[K, V]) {
	if m.sub != nil && n.subs.n != 0 {
		n.subs.each(m.sub)
	}
	if m.group != nil {
		for _, g := range n.groups {
			m.group(g)
		}
	}
}
