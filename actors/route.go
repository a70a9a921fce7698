package actors

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/nanoactor/nanoactor/protocol/topic"
)

// sender is what publish needs of an actor context (or the root context).
type sender interface {
	Send(pid *actor.PID, message any)
}

// target is one session a message goes to, after merging all of its
// matching subscriptions.
type target struct {
	key     string
	pid     *actor.PID
	qos     byte
	retain  bool
	subIDs  []int
	shared  *sharedRef
	backlog *atomic.Int64
}

// router holds per-publish scratch space, pooled.
type router struct {
	b       *Broker
	m       *Message
	targets []target
}

var routerPool = sync.Pool{New: func() any { return &router{} }}

// publish routes m to every matching session: one deliver per session,
// at the highest QoS of its matching subscriptions, carrying every
// matching subscription identifier (v5 3.3.4), and to one member of each
// matching shared group. A retained message also goes to the topic actor.
// It reads the index snapshot and takes no lock. It returns the number of
// sessions the message went to.
func (b *Broker) publish(ctx sender, m *Message) int {
	if m.Retain {
		ctx.Send(b.topics, &retain{msg: m})
	}
	r := routerPool.Get().(*router)
	r.b, r.m, r.targets = b, m, r.targets[:0]
	b.index.Snapshot().Match(m.Topic, r.sub, r.group)
	limit := int64(b.opt.MaxQueuedBytes)
	cost := int64(m.size)
	for i := range r.targets {
		t := &r.targets[i]
		if t.backlog != nil {
			lim := limit
			if t.qos == 0 {
				lim = limit / 2 // QoS 0 goes first, leaving room for QoS 1/2
			}
			if t.backlog.Load()+cost > lim {
				// The session is not keeping up: its mailbox already holds a
				// queue's worth. Drop here, as its full queue would.
				if n := b.stats.dropped.Add(1); b.backlogDrops.Add(1)%1000 == 1 {
					b.log.Warn("session backlog full: message dropped", "reason", "session backlog full",
						"client", t.key, "qos", t.qos, "backlog_bytes", t.backlog.Load(), "dropped_total", n)
				}
				continue
			}
			t.backlog.Add(cost)
		}
		ctx.Send(t.pid, &deliver{msg: m, qos: t.qos, subIDs: t.subIDs, retain: t.retain, shared: t.shared, cost: cost})
	}
	n := len(r.targets)
	clear(r.targets)
	r.b, r.m = nil, nil
	routerPool.Put(r)
	b.stats.routed.Add(uint64(n))
	return n
}

func (r *router) sub(key string, e subEntry) {
	if e.noLocal && key == r.m.From {
		return // [MQTT-3.8.3-3] No Local
	}
	r.add(key, e)
}

func (r *router) add(key string, e subEntry) {
	q := r.m.QoS
	if e.qos < q {
		q = e.qos // [MQTT-3.8.4-8] min(publish QoS, granted QoS)
	}
	// RETAIN is 0 for a message forwarded to an established subscription,
	// unless Retain As Published [MQTT-3.3.1-9] [MQTT-3.3.1-12] [MQTT-3.3.1-13].
	ret := r.m.Retain && e.rap
	for i := range r.targets {
		t := &r.targets[i]
		if t.key == key && t.shared == nil {
			// Overlapping subscriptions: one copy at the highest QoS with
			// every identifier [MQTT-3.3.4-2] [MQTT-3.3.4-3].
			if q > t.qos {
				t.qos = q
			}
			t.retain = t.retain || ret
			if e.subID > 0 {
				t.subIDs = append(t.subIDs, e.subID)
			}
			return
		}
	}
	t := target{key: key, pid: e.session, qos: q, retain: ret, backlog: e.backlog}
	if e.subID > 0 {
		t.subIDs = []int{e.subID}
	}
	r.targets = append(r.targets, t)
}

// group picks one member of a shared subscription group [MQTT-4.8.2-?]:
// round robin by default, or at random.
func (r *router) group(g *topic.Group[string, subEntry]) {
	n := g.Len()
	var i int
	if r.b.opt.SharedRandom {
		i = rand.IntN(n)
	} else {
		i = int(r.b.cursor(g.Name(), g.Filter()).Add(1) % uint64(n))
	}
	key, e := g.At(i)
	// A shared subscription is a separate subscription: it is delivered even
	// if the same session also matched directly, so add never merges into
	// a shared target.
	q := r.m.QoS
	if e.qos < q {
		q = e.qos
	}
	t := target{key: key, pid: e.session, qos: q, retain: r.m.Retain && e.rap, backlog: e.backlog,
		shared: &sharedRef{name: g.Name(), filter: g.Filter()}}
	if e.subID > 0 {
		t.subIDs = []int{e.subID}
	}
	r.targets = append(r.targets, t)
}

// reshare sends a message that a shared group member could not finish
// (it left the group, ended or disconnected) to another member of the same
// group, and reports whether one took it.
func (b *Broker) reshare(ctx sender, d deliver, exclude string) bool {
	done := false
	b.index.Snapshot().Match(d.msg.Topic, nil, func(g *topic.Group[string, subEntry]) {
		if done || g.Name() != d.shared.name || g.Filter() != d.shared.filter {
			return
		}
		n := g.Len()
		start := int(b.cursor(g.Name(), g.Filter()).Add(1) % uint64(n))
		for i := 0; i < n; i++ {
			key, e := g.At((start + i) % n)
			if key == exclude {
				continue
			}
			q := d.msg.QoS
			if e.qos < q {
				q = e.qos
			}
			var ids []int
			if e.subID > 0 {
				ids = []int{e.subID}
			}
			ctx.Send(e.session, &deliver{msg: d.msg, qos: q, subIDs: ids, retain: d.retain, shared: d.shared})
			done = true
			return
		}
	})
	return done
}

// cursor returns the round-robin cursor of a shared group.
func (b *Broker) cursor(name, filter string) *atomic.Uint64 {
	k := name + "\x00" + filter
	if c, ok := b.cursors.Load(k); ok {
		return c.(*atomic.Uint64)
	}
	c, _ := b.cursors.LoadOrStore(k, new(atomic.Uint64))
	return c.(*atomic.Uint64)
}
