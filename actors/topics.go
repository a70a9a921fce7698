package actors

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/nanoactor/nanoactor/protocol"
)

// subEntry is one subscription as the index stores it (keyed by client id).
type subEntry struct {
	session *actor.PID
	qos     byte
	noLocal bool
	rap     bool // Retain As Published
	subID   int  // v5 Subscription Identifier; 0 none
	// backlog is the bytes routed to the session and not yet taken from
	// its mailbox; the router drops past the session's queue limit, so a
	// slow session's mailbox cannot grow without bound.
	backlog *atomic.Int64
}

// subscription is the session's own record of one subscription.
type subscription struct {
	filter string
	entry  subEntry
}

// subItem is one filter of a SUBSCRIBE, validated by the session.
type subItem struct {
	index        int // position in the SUBSCRIBE, for the reply
	filter       string
	entry        subEntry
	sendRetained bool // Retain Handling said so, and the filter is not shared
}

// subscribeReq asks the topic actor to apply a SUBSCRIBE.
type subscribeReq struct {
	clientID string
	session  *actor.PID
	packetID uint16
	reasons  []protocol.ReasonCode // filled in by the session for refused filters
	items    []subItem
	props    bool // v5: reply may carry properties
}

// subscribed is the topic actor's reply: the subscriptions are in the
// published snapshot; retained are the retained messages to send.
type subscribed struct {
	packetID uint16
	reasons  []protocol.ReasonCode
	retained []deliver
}

// unsubscribeReq asks the topic actor to apply an UNSUBSCRIBE.
type unsubscribeReq struct {
	clientID string
	session  *actor.PID
	packetID uint16
	filters  []string
}

// unsubscribed is the reply: per filter, Success or No subscription existed.
type unsubscribed struct {
	packetID uint16
	reasons  []protocol.ReasonCode
}

// unsubscribeAll removes every subscription of a session that ended or was
// replaced; entries of another session with the same client id stay.
type unsubscribeAll struct {
	clientID string
	session  *actor.PID
}

// retain stores, replaces or deletes (empty payload) a retained message
// [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-7] (v5 [MQTT-3.3.1-10..11]).
type retain struct{ msg *Message }

// topics owns the subscription index (and publishes its snapshots) and the
// retained messages. One owner goroutine at a time: the actor's.
type topics struct {
	b         *Broker
	bySession map[string]map[string]subEntry // client id → filter → entry
	retained  retainedStore                  // topic → message, as a trie of levels
	refused   int                            // retained messages refused by the limits
}

// retain stores, replaces or deletes a retained message, within
// retained_max_messages and retained_max_bytes: past them a message for a
// new topic is not stored (it is still delivered), counted and logged.
func (t *topics) retain(m *Message) {
	key := string(m.Topic)
	old := t.retained.get(key)
	if len(m.Payload) == 0 {
		t.retained.del(key) // [MQTT-3.3.1-6] [MQTT-3.3.1-7]
		return
	}
	grow := len(m.Payload)
	if old != nil {
		grow -= len(old.Payload)
	}
	o := &t.b.opt
	if (old == nil && o.RetainedMax > 0 && t.retained.n >= o.RetainedMax) ||
		(o.RetainedMaxBytes > 0 && t.retained.bytes+grow > o.RetainedMaxBytes) {
		if t.refused++; t.refused == 1 || t.refused%1000 == 0 {
			t.b.log.Warn("retained message not stored", "reason", "retained limit", "topic", key,
				"retained", t.retained.n, "retained_bytes", t.retained.bytes, "refused_total", t.refused)
		}
		return
	}
	t.retained.set(key, m)
}

func newTopics(b *Broker) actor.Producer {
	return func() actor.Actor {
		return &topics{b: b, bySession: map[string]map[string]subEntry{}}
	}
}

// Receive implements actor.Actor.
func (t *topics) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *subscribeReq:
		t.subscribe(ctx, m)
	case *unsubscribeReq:
		t.unsubscribe(ctx, m)
	case *unsubscribeAll:
		subs := t.bySession[m.clientID]
		t.b.index.Batch(func() {
			for f, e := range subs {
				if e.session == m.session || m.session == nil {
					t.b.index.Unsubscribe(f, m.clientID)
					delete(subs, f)
				}
			}
		})
		if len(subs) == 0 {
			delete(t.bySession, m.clientID)
		}
	case *retain:
		t.retain(m.msg)
	}
}

func (t *topics) subscribe(ctx actor.Context, r *subscribeReq) {
	subs := t.bySession[r.clientID]
	if subs == nil {
		subs = map[string]subEntry{}
		t.bySession[r.clientID] = subs
	}
	reply := &subscribed{packetID: r.packetID, reasons: r.reasons}
	now := time.Now()
	t.b.index.Batch(func() {
		for _, it := range r.items {
			if _, err := t.b.index.Subscribe(it.filter, r.clientID, it.entry); err != nil {
				reply.reasons[it.index] = protocol.ReasonTopicFilterInvalid
				continue
			}
			subs[it.filter] = it.entry
		}
	})
	// Retained messages matching a new subscription are sent with RETAIN 1
	// [MQTT-3.3.1-8], at min(QoS) [MQTT-3.3.1-?], after the SUBACK.
	for _, it := range r.items {
		if !it.sendRetained || reply.reasons[it.index].IsError() {
			continue
		}
		var expired []*Message
		t.retained.match(it.filter, func(m *Message) {
			if m.expired(now) {
				expired = append(expired, m)
				return
			}
			q := m.QoS
			if it.entry.qos < q {
				q = it.entry.qos
			}
			var ids []int
			if it.entry.subID > 0 {
				ids = []int{it.entry.subID}
			}
			reply.retained = append(reply.retained, deliver{msg: m, qos: q, subIDs: ids, retain: true})
		})
		for _, m := range expired {
			t.retained.del(string(m.Topic)) // expired retained messages go [MQTT-3.3.2-5]
		}
	}
	ctx.Send(r.session, reply)
}

func (t *topics) unsubscribe(ctx actor.Context, r *unsubscribeReq) {
	subs := t.bySession[r.clientID]
	reply := &unsubscribed{packetID: r.packetID, reasons: make([]protocol.ReasonCode, len(r.filters))}
	t.b.index.Batch(func() {
		for i, f := range r.filters {
			removed := false
			if e, ok := subs[f]; ok && e.session == r.session {
				removed, _ = t.b.index.Unsubscribe(f, r.clientID)
				delete(subs, f)
			}
			if !removed {
				reply.reasons[i] = protocol.ReasonNoSubscriptionExisted
			}
		}
	})
	ctx.Send(r.session, reply)
}
