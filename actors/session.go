package actors

import (
	"container/list"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/nanoactor/nanoactor/protocol"
)

// outState is where an outbound QoS 1/2 message stands.
type outState uint8

const (
	outQueued  outState = iota // not sent yet (window full, client offline, or writer full)
	outSent                    // PUBLISH sent, waiting for PUBACK / PUBREC
	outRelSent                 // QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP
)

// outMsg is one message on its way to this session's client.
type outMsg struct {
	d     deliver
	id    uint16
	state outState
	dup   bool
}

// session is the actor for one client identifier. It owns subscriptions,
// packet identifiers, QoS 1/2 inflight state, the exactly-once receive
// state, the offline queue, the will and the expiry timer. It outlives
// connections; it never blocks.
type session struct {
	b        *Broker
	clientID string
	self     *actor.PID

	conn        *connHandle // nil while offline
	expiry      time.Duration
	subs        map[string]*subscription // by filter as subscribed ($share/... included); nil until the first
	inflight    map[uint16]*list.Element // packet id → element of sent; nil until the first
	sent        list.List                // *outMsg with a packet id, in send order
	queue       list.List                // *outMsg waiting for the window or a connection
	queued      int                      // messages in queue
	queuedBytes int                      // bytes of the queued messages

	awaitRel map[uint16]uint64 // QoS 2 received, PUBREC sent, PUBREL awaited [MQTT-4.3.3-9]: id → pipe that counted it; nil until the first

	will                               *Message
	willDelay                          time.Duration
	willTimer, expiryTimer, retryTimer *time.Timer
	backlog                            atomic.Int64 // see subEntry.backlog
	// mb is this session's mailbox, given to its connections (attached) so
	// that a connection's reader can run the session directly (postLocal).
	mb *mailbox

	// Small fields together, so that the struct packs (256 bytes: idle
	// sessions are one per connection).
	timerSeq   uint32
	dropped    int32 // messages dropped by the queue limits
	nextID     uint16
	resend     bool // sent holds messages to send again (after a reconnect)
	ended      bool
	used       bool // a connection has attached before
	writerFull bool // the connection's writer refused a QoS 1/2 message: ErrQueueFull
}

// log is the session's logger: "client" is added per line.
func (s *session) log() sessionLog { return sessionLog{s} }

// newSession is the producer of the one Props every session is spawned
// from (Broker.sessionProps). A session learns its client id from its first
// attach, which the registry sends right after the spawn; a restarted one
// from the instance it replaces (see handoff).
func newSession(b *Broker) actor.Producer {
	return func() actor.Actor {
		return &session{b: b}
	}
}

// sessionCarry is what a restarted session takes over from the instance it
// replaces (see handoff): the mailbox stays with the actor across restarts.
type sessionCarry struct {
	clientID string
	mb       *mailbox
}

// setMailbox implements mailboxOwner.
func (s *session) setMailbox(m *mailbox) { s.mb = m }

// Receive implements actor.Actor.
func (s *session) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		s.self = ctx.Self()
		if c, ok := s.b.restarts.take(s.self.Id).(sessionCarry); ok {
			s.clientID, s.mb = c.clientID, c.mb
		}
	case *actor.Restarting:
		s.b.restarts.put(ctx.Self().Id, sessionCarry{s.clientID, s.mb})
	case *attach:
		s.attach(ctx, m)
	case *inbound:
		if s.conn != nil && m.gen == s.conn.gen {
			s.inbound(ctx, m.pkt)
		}
		recycle(m.pkt)
		m.pkt = nil
		if m.credit != nil {
			m.credit.Release(m.cost)
		}
	case *deliver:
		if m.cost > 0 {
			s.backlog.Add(-m.cost)
		}
		s.enqueue(*m)
	case *subscribed:
		s.subscribed(ctx, m)
	case *unsubscribed:
		s.unsubscribed(m)
	case *detached:
		if s.conn != nil && m.gen == s.conn.gen {
			s.detach(ctx, m)
		}
	case *endSession:
		s.kickConn(ctx, m.reason, "session replaced by a clean start")
		s.end(ctx)
	case *timerFired:
		s.timer(ctx, m)
	case *connGone:
		if s.conn != nil && s.conn.gen == m.gen {
			s.log().Warn("connection actor stopped without detaching", "reason", "pipe terminated")
			s.detach(ctx, &detached{gen: m.gen, sendWill: true})
		}
	case *actor.Stopping:
		s.stopTimers()
	}
}

// attach binds a new connection: takeover of a live one [MQTT-3.1.4-3],
// CONNACK first, then redelivery of unacknowledged messages in their
// original order with DUP [MQTT-4.4.0-1], then the queue.
func (s *session) attach(ctx actor.Context, a *attach) {
	if s.clientID == "" {
		s.clientID = a.conn.clientID // the first attach: see newSession
	}
	if s.ended {
		// The registry sent this before it learnt the session ended; ask
		// again (after our sessionEnded, so it spawns a fresh session).
		ctx.Send(ctx.Parent(), &connectReq{clientID: s.clientID, attach: a})
		return
	}
	if s.conn != nil {
		// [MQTT-3.1.4-3] the existing connection is closed; v5 reason 0x8E.
		// Its will goes out now unless the new connection resumes the
		// session and the will has a delay (3.1.4, 3.1.3.2.2).
		s.kickConn(ctx, protocol.ReasonSessionTakenOver, "session taken over")
		s.conn = nil
		if s.will != nil && (a.cleanStart || s.willDelay == 0) {
			s.publishWill(ctx)
		}
		if s.expiry <= 0 {
			// The old connection's session ended with it (expiry 0): the new
			// connection starts a fresh one [MQTT-3.1.2-6] (v5 3.1.2.11.2).
			s.reset(ctx)
			s.used = false
		}
	}
	// Session Present: this session existed before this CONNECT, whatever
	// it holds [MQTT-3.2.2-2]; a fresh or cleaned one is not [MQTT-3.2.2-1].
	present := s.used
	s.used = true
	if a.cleanStart {
		s.reset(ctx)
		present = false
	}
	s.cancelTimer(&s.willTimer)
	s.cancelTimer(&s.expiryTimer)
	// A will pending from the previous connection is dropped when the client
	// reconnects before its delay ran out [MQTT-3.1.3-9].
	s.will, s.willDelay = a.will, a.willDelay
	s.expiry = a.expiry
	s.conn = a.conn
	s.writerFull = false
	a.connack.SessionPresent = present // [MQTT-3.2.2-2] [MQTT-3.2.2-3]
	buf, err := a.connack.Append(nil, s.conn.version)
	freeConnack(a.connack)
	a.connack = nil
	if err != nil {
		s.log().Error("encode connack", "reason", err)
		s.kickConn(ctx, protocol.ReasonImplementationSpecific, "encode connack failed")
		s.conn = nil
		return
	}
	if err := s.conn.out.Enqueue(buf); err != nil {
		// The connection closed meanwhile; it still learns its session and
		// detaches from it, which ends or keeps the session as usual.
		s.log().Debug("connack not sent", "reason", err)
	}
	ctx.Send(a.conn.pid, &attached{session: s.self, mb: s.mb, present: present})
	// Everything in flight goes again, first, in order.
	s.markResend()
	s.pump(ctx)
	// A connection actor that stops without detaching still detaches: if
	// it stopped before it could learn of this session, say so to
	// ourselves, behind what we just did (see connHandle.link).
	a.conn.session = s.self
	if !a.conn.link.CompareAndSwap(linkNone, linkAttached) {
		ctx.Send(s.self, &connGone{gen: a.conn.gen})
	}
}

// connGone tells a session that the actor of its connection gen stopped
// without detaching (see connHandle.link).
type connGone struct{ gen uint64 }

// reset discards all state: clean start [MQTT-3.1.2-4].
func (s *session) reset(ctx actor.Context) {
	if len(s.subs) > 0 {
		ctx.Send(s.b.topics, &unsubscribeAll{clientID: s.clientID, session: s.self})
	}
	s.subs, s.inflight, s.awaitRel = nil, nil, nil
	s.sent.Init()
	s.queue.Init()
	s.queued, s.queuedBytes, s.nextID = 0, 0, 0
}

func (s *session) detach(ctx actor.Context, d *detached) {
	s.conn = nil
	if d.expiry != nil {
		s.expiry = *d.expiry
	}
	if d.sendWill && s.will != nil {
		if s.willDelay <= 0 || s.willDelay >= s.expiry {
			// Will Delay 0, or the session ends first: publish now or at
			// session end, whichever is earlier [MQTT-3.1.3-9].
			if s.willDelay <= 0 {
				s.publishWill(ctx)
			}
		} else {
			s.willTimer = s.after(s.willDelay, timerWill)
		}
	} else if !d.sendWill {
		s.will = nil // normal DISCONNECT discards the will [MQTT-3.1.2-10] [MQTT-3.14.4-3]
	}
	// Messages sent but unacknowledged go again on reconnect; those of a
	// shared subscription go to another member now, if there is one.
	s.markResend()
	s.reshareAll(ctx, nil)
	if s.expiry <= 0 {
		s.end(ctx)
		return
	}
	s.expiryTimer = s.after(s.expiry, timerExpiry)
}

func (s *session) publishWill(ctx actor.Context) {
	if s.will == nil {
		return
	}
	w := s.will
	s.will = nil
	s.b.publish(ctx, w)
	s.log().Debug("will published", "topic", string(w.Topic))
}

// end stops the session: the will goes out if still pending, subscriptions
// are removed, the registry forgets it.
func (s *session) end(ctx actor.Context) {
	if s.ended {
		return
	}
	s.ended = true
	s.publishWill(ctx)
	s.reshareAll(ctx, nil)
	ctx.Send(s.b.topics, &unsubscribeAll{clientID: s.clientID, session: s.self})
	// The registry stops us (with a poison pill, behind any attach it sent
	// before it forgot us, which we hand back to it).
	ctx.Send(ctx.Parent(), &sessionEnded{clientID: s.clientID, pid: s.self})
	s.stopTimers()
}

// kickConn tells the attached connection to close with reason. ctx may
// be nil (the root context then sends).
func (s *session) kickConn(_ actor.Context, reason protocol.ReasonCode, why string) {
	if s.conn != nil {
		s.b.sys.Root.Send(s.conn.pid, &kick{reason: reason, why: why})
	}
}

func (s *session) timer(ctx actor.Context, t *timerFired) {
	switch t.kind {
	case timerWill:
		if s.conn == nil {
			s.publishWill(ctx)
		}
	case timerExpiry:
		if s.conn == nil {
			s.end(ctx)
		}
	case timerRetry:
		s.retryTimer = nil
		s.pump(ctx)
	}
}

func (s *session) after(d time.Duration, kind timerKind) *time.Timer {
	s.timerSeq++
	seq, pid, sys := s.timerSeq, s.self, s.b.sys
	return time.AfterFunc(d, func() { sys.Root.Send(pid, &timerFired{kind: kind, seq: seq}) })
}

func (s *session) cancelTimer(t **time.Timer) {
	if *t != nil {
		(*t).Stop()
		*t = nil
	}
}

func (s *session) stopTimers() {
	s.cancelTimer(&s.willTimer)
	s.cancelTimer(&s.expiryTimer)
	s.cancelTimer(&s.retryTimer)
}

// send encodes and enqueues one packet to the attached connection. It
// reports false when there is no connection or its writer refused.
func (s *session) send(p protocol.Packet) bool {
	if s.conn == nil {
		return false
	}
	buf, err := p.Append(make([]byte, 0, p.Len(s.conn.version)), s.conn.version)
	return s.enqueueEncoded(buf, err, p.Type())
}

// enqueueEncoded hands an encoded packet to the connection's writer, or
// logs why it could not be encoded.
func (s *session) enqueueEncoded(buf []byte, err error, t protocol.Type) bool {
	if err != nil {
		s.log().Error("encode", "packet", t.String(), "reason", err)
		return false
	}
	return s.conn.out.Enqueue(buf) == nil
}

// sendAck is send for an acknowledgement: the concrete type keeps a (and
// its properties block) off the heap, where the Packet interface would
// move it there: one allocation fewer per QoS 1/2 message.
func (s *session) sendAck(a *protocol.Ack) bool {
	if s.conn == nil {
		return false
	}
	v := s.conn.version
	buf, err := a.Append(make([]byte, 0, a.Len(v)), v)
	return s.enqueueEncoded(buf, err, a.Kind)
}

// markResend marks every unacknowledged PUBLISH for resending with DUP and
// every PUBREL for resending, keeping their packet ids and order
// [MQTT-4.4.0-1].
func (s *session) markResend() {
	s.resend = true
	for e := s.sent.Front(); e != nil; e = e.Next() {
		om := e.Value.(*outMsg)
		switch om.state {
		case outSent:
			om.state, om.dup = outQueued, true
		case outRelSent:
			om.dup = true
		}
	}
}
