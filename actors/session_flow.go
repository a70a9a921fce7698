package actors

import (
	"container/list"
	"errors"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/transport"
)

// inbound handles one packet from the client, in arrival order.
func (s *session) inbound(ctx actor.Context, pkt protocol.Packet) {
	switch p := pkt.(type) {
	case *protocol.Publish:
		s.inPublish(ctx, p)
	case *protocol.Ack:
		s.inAck(ctx, p)
	case *protocol.Subscribe:
		s.subscribe(ctx, p)
	case *protocol.Unsubscribe:
		s.unsubscribe(ctx, p)
	}
}

func (s *session) v5() bool { return s.conn != nil && s.conn.version >= protocol.Version5 }

// inPublish routes a client's PUBLISH and acknowledges it. QoS 2 keeps the
// packet id until PUBREL, in the session, so a resend with DUP after a
// reconnect is acknowledged but never delivered twice [MQTT-4.3.3-9]
// (3.1.1 [MQTT-4.3.3-2] method B).
func (s *session) inPublish(ctx actor.Context, p *protocol.Publish) {
	now := time.Now()
	switch p.QoS {
	case 0:
		s.b.publish(ctx, newMessage(p, s.clientID, now))
	case 1:
		n := s.b.publish(ctx, newMessage(p, s.clientID, now))
		ack := protocol.Ack{Kind: protocol.TypePuback, PacketID: p.PacketID} // [MQTT-4.3.2-2]
		if n == 0 && s.v5() {
			ack.Reason = protocol.ReasonNoMatchingSubscribers
		}
		s.sendAck(&ack)
		s.conn.quota.Add(-1) // PUBACK returns the send quota (4.9)
	case 2:
		ack := protocol.Ack{Kind: protocol.TypePubrec, PacketID: p.PacketID} // [MQTT-4.3.3-8]
		if gen, dup := s.awaitRel[p.PacketID]; dup {
			// Already delivered: acknowledge again, deliver nothing. The
			// resend took quota; count the id on this pipe once.
			if gen == s.conn.gen {
				s.conn.quota.Add(-1)
			}
			s.awaitRel[p.PacketID] = s.conn.gen
			s.sendAck(&ack)
			return
		}
		n := s.b.publish(ctx, newMessage(p, s.clientID, now))
		if s.awaitRel == nil {
			s.awaitRel = map[uint16]uint64{}
		}
		s.awaitRel[p.PacketID] = s.conn.gen
		if n == 0 && s.v5() {
			ack.Reason = protocol.ReasonNoMatchingSubscribers
		}
		s.sendAck(&ack)
	}
}

func (s *session) inAck(ctx actor.Context, a *protocol.Ack) {
	switch a.Kind {
	case protocol.TypePubrel:
		comp := protocol.Ack{Kind: protocol.TypePubcomp, PacketID: a.PacketID} // [MQTT-4.3.3-11]
		if gen, ok := s.awaitRel[a.PacketID]; ok {
			delete(s.awaitRel, a.PacketID) // [MQTT-4.3.3-10] discard the stored id
			if gen == s.conn.gen {
				s.conn.quota.Add(-1) // PUBCOMP returns the send quota (4.9)
			}
		} else if s.v5() {
			comp.Reason = protocol.ReasonPacketIdentifierNotFound
		}
		s.sendAck(&comp)
	case protocol.TypePuback:
		if om := s.inflightMsg(a.PacketID); om != nil && om.d.qos == 1 && om.state == outSent {
			s.remove(a.PacketID) // [MQTT-4.3.2-?] the packet id is free again
			s.pump(ctx)
		}
	case protocol.TypePubrec:
		om := s.inflightMsg(a.PacketID)
		switch {
		case om == nil || om.d.qos != 2:
			if s.v5() {
				s.sendAck(&protocol.Ack{Kind: protocol.TypePubrel, PacketID: a.PacketID, Reason: protocol.ReasonPacketIdentifierNotFound})
			} else {
				s.sendAck(&protocol.Ack{Kind: protocol.TypePubrel, PacketID: a.PacketID})
			}
		case a.Reason.IsError():
			// v5: a PUBREC with an error ends the exchange (4.3.3).
			s.remove(a.PacketID)
			s.pump(ctx)
		default:
			om.state = outRelSent // [MQTT-4.3.3-4] send PUBREL, discard the message
			s.sendAck(&protocol.Ack{Kind: protocol.TypePubrel, PacketID: a.PacketID})
		}
	case protocol.TypePubcomp:
		if om := s.inflightMsg(a.PacketID); om != nil && om.state == outRelSent {
			s.remove(a.PacketID)
			s.pump(ctx)
		}
	}
}

func (s *session) inflightMsg(id uint16) *outMsg {
	if e, ok := s.inflight[id]; ok {
		return e.Value.(*outMsg)
	}
	return nil
}

func (s *session) remove(id uint16) {
	if e, ok := s.inflight[id]; ok {
		s.sent.Remove(e)
		delete(s.inflight, id)
	}
}

// enqueue accepts one routed message. Policy (documented in the README):
// expired messages are dropped; QoS 0 is not queued for an offline client;
// past max_queued_messages or max_queued_bytes the NEW message is dropped,
// counted and logged (as Mosquitto does); QoS 0 refused by a full writer is
// dropped, QoS 1/2 stays queued and is retried.
func (s *session) enqueue(d deliver) {
	if s.ended {
		return
	}
	now := time.Now()
	if d.msg.expired(now) {
		s.b.stats.expired.Add(1)
		return
	}
	if s.conn == nil && d.qos == 0 && !s.b.opt.QueueQoS0 {
		return // QoS 0 is not queued for an offline client unless queue_qos0_messages
	}
	if s.writerFull && d.qos == 0 {
		s.b.stats.dropped.Add(1) // slow client: QoS 0 dropped while its writer is full
		return
	}
	if s.queued >= s.b.opt.MaxQueued || s.queuedBytes+d.msg.size > s.b.opt.MaxQueuedBytes {
		n := s.b.stats.dropped.Add(1)
		if s.dropped++; s.dropped == 1 || s.dropped%1000 == 0 {
			s.log().Warn("session queue full: message dropped", "reason", "queue full",
				"queued", s.queued, "queued_bytes", s.queuedBytes, "dropped", s.dropped, "dropped_total", n)
		}
		return
	}
	if d.qos == 0 && s.conn != nil && s.queue.Len() == 0 && !s.resend {
		// Nothing waits ahead of it: send without queueing (the common
		// QoS 0 case, no list element).
		om := outMsg{d: d}
		s.transmit(nil, &om, now)
		return
	}
	s.queue.PushBack(&outMsg{d: d})
	s.queued++
	s.queuedBytes += d.msg.size
	s.pump(nil)
}

// pump sends what the window allows, in order: PUBLISH resends (DUP) and
// queued messages, and PUBREL resends after a reconnect [MQTT-4.4.0-1]
// [MQTT-4.6.0-1] [MQTT-4.6.0-3].
func (s *session) pump(ctx actor.Context) {
	if s.conn == nil {
		return
	}
	window := s.b.opt.MaxInflight
	if s.conn.receiveMax > 0 && s.conn.receiveMax < window {
		window = s.conn.receiveMax // [MQTT-3.3.4-9] the client's Receive Maximum
	}
	now := time.Now()
	// After a reconnect: every unacknowledged PUBLISH again with DUP, and
	// every PUBREL, in their original order [MQTT-4.4.0-1] [MQTT-4.6.0-1]
	// [MQTT-4.6.0-3]. One walk of the inflight list, once per reconnect.
	if s.resend {
		for e := s.sent.Front(); e != nil; {
			next := e.Next()
			om := e.Value.(*outMsg)
			if om.dup || om.state == outQueued {
				if !s.transmit(e, om, now) {
					return
				}
			}
			e = next
		}
		s.resend = false
	}
	for e := s.queue.Front(); e != nil; e = s.queue.Front() {
		om := e.Value.(*outMsg)
		if om.d.msg.expired(now) {
			s.discard(e, om) // [MQTT-3.3.2-5] not delivered once expired
			s.b.stats.expired.Add(1)
			continue
		}
		if om.d.qos > 0 {
			if len(s.inflight) >= window {
				return // window full; PUBACK / PUBCOMP pump again
			}
			id := s.newPacketID()
			if id == 0 {
				return // all 65535 ids in flight
			}
			s.queue.Remove(e)
			s.queued--
			s.queuedBytes -= om.d.msg.size
			om.id = id
			e = s.sent.PushBack(om)
			if s.inflight == nil {
				s.inflight = map[uint16]*list.Element{}
			}
			s.inflight[id] = e
		}
		if !s.transmit(e, om, now) {
			return
		}
	}
}

// transmit encodes and enqueues one message (or, for a QoS 2 message
// whose PUBREC arrived, its PUBREL) and reports whether pumping may go on.
// QoS 0 leaves the queue when sent or dropped.
func (s *session) transmit(e *list.Element, om *outMsg, now time.Time) bool {
	if om.state == outRelSent {
		if !s.sendAck(&protocol.Ack{Kind: protocol.TypePubrel, PacketID: om.id}) {
			s.retryLater()
			return false
		}
		om.dup = false
		return true
	}
	head, err := s.publishHead(om, now)
	if err != nil {
		s.log().Error("encode publish", "reason", err)
		s.discard(e, om)
		return true
	}
	payload := om.d.msg.Payload
	if s.conn.maxPacket > 0 && len(head)+len(payload) > s.conn.maxPacket {
		// [MQTT-3.1.2-24] never send more than the client's Maximum Packet
		// Size: the message is discarded as if sent [MQTT-3.1.2-25].
		s.b.stats.tooLarge.Add(1)
		s.discard(e, om)
		s.conn.aliases = nil // an alias may have been assigned to a topic never sent
		return true
	}
	// The header is this subscriber's; the payload is shared by every
	// subscriber and never copied: the writer sends both with one vectored
	// write.
	if len(payload) > 0 {
		err = s.conn.out.EnqueueBatch(head, payload)
	} else {
		err = s.conn.out.Enqueue(head)
	}
	if err != nil {
		s.conn.aliases = nil // an alias may have been assigned to a topic never sent
		if s.b.opt.DisconnectSlow && errors.Is(err, transport.ErrQueueFull) {
			// slow_client_policy = "disconnect": close with Quota exceeded;
			// the session keeps its QoS 1/2 messages for the next connection.
			s.kickConn(nil, protocol.ReasonQuotaExceeded, "slow client: outbound bytes over max_outbound_bytes")
		}
		if om.d.qos == 0 {
			s.b.stats.dropped.Add(1) // slow client: QoS 0 is dropped
			s.discard(e, om)
			return true
		}
		om.state = outQueued // not on the wire: send again (DUP only if it was)
		if !errors.Is(err, transport.ErrClosed) {
			s.retryLater() // QoS 1/2 stay for redelivery
		}
		if errors.Is(err, transport.ErrQueueFull) && !s.writerFull {
			// Slow client: QoS 0 is dropped while the writer is full, so it
			// cannot crowd QoS 1/2 out of the session queue.
			s.writerFull = true
			s.dropQueuedQoS0()
		}
		s.resend = true
		return false
	}
	s.writerFull = false
	if om.d.qos == 0 {
		s.discard(e, om)
	} else {
		om.state, om.dup = outSent, false
	}
	return true
}

// dropQueuedQoS0 drops (and counts) every queued QoS 0 message.
func (s *session) dropQueuedQoS0() {
	for e := s.queue.Front(); e != nil; {
		next := e.Next()
		if om := e.Value.(*outMsg); om.d.qos == 0 {
			s.discard(e, om)
			s.b.stats.dropped.Add(1)
		}
		e = next
	}
}

// discard removes a message from whichever list holds it.
func (s *session) discard(e *list.Element, om *outMsg) {
	if e == nil {
		return // sent straight from enqueue, never listed
	}
	if om.id != 0 {
		s.sent.Remove(e)
		delete(s.inflight, om.id)
		return
	}
	s.queue.Remove(e)
	s.queued--
	s.queuedBytes -= om.d.msg.size
}

// retryLater schedules a pump when the writer refused: it drains on its
// own, or closes the connection at its write deadline.
func (s *session) retryLater() {
	if s.retryTimer == nil {
		s.retryTimer = s.after(retryInterval, timerRetry)
	}
}

// retryInterval is how soon a session retries sending QoS 1/2 messages
// that a full writer refused.
const retryInterval = 20 * time.Millisecond

// newPacketID returns an unused non-zero packet identifier [MQTT-2.2.1-3]
// [MQTT-2.3.1-2], or 0 when all are in use.
func (s *session) newPacketID() uint16 {
	for range 65535 {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		if _, used := s.inflight[s.nextID]; !used {
			return s.nextID
		}
	}
	return 0
}

// publishHead returns the PUBLISH bytes before the payload for one
// delivery. The common case (no subscription identifier, no expiry, not a
// resend) copies a header the message encoded once for its (QoS, version,
// RETAIN) and patches the packet id; otherwise it encodes one.
func (s *session) publishHead(om *outMsg, now time.Time) ([]byte, error) {
	m := om.d.msg
	v := s.conn.version
	if s.conn.aliasMax > 0 {
		return s.aliasedHead(om, now)
	}
	if len(om.d.subIDs) == 0 && !om.dup && m.Expires.IsZero() {
		tmpl, err := m.head(om.d.qos, v, om.d.retain)
		if err != nil {
			return nil, err
		}
		h := append(make([]byte, 0, len(tmpl)), tmpl...)
		if om.d.qos > 0 {
			protocol.PatchPacketID(h, len(h)-m.idBack(v), om.id)
		}
		return h, nil
	}
	pub := s.encodePublish(om, now)
	return pub.AppendHeaderOnly(nil, v)
}

// aliasedHead encodes a PUBLISH header using a topic alias toward a client
// that allows them: a topic seen before on this connection goes as an
// empty topic plus its alias; a new one takes a free alias (sent with the
// topic) while any remain, up to the client's Topic Alias Maximum
// [MQTT-3.3.2-11]; past that topics go in full.
func (s *session) aliasedHead(om *outMsg, now time.Time) ([]byte, error) {
	pub := s.encodePublish(om, now)
	if a, ok := s.conn.aliases[string(pub.Topic)]; ok {
		pub.Topic = nil
		pub.Props.TopicAlias = a
		pub.Props.Set(protocol.PropTopicAlias)
	} else if len(s.conn.aliases) < int(s.conn.aliasMax) {
		if s.conn.aliases == nil {
			s.conn.aliases = map[string]uint16{}
		}
		a := uint16(len(s.conn.aliases) + 1)
		s.conn.aliases[string(pub.Topic)] = a
		pub.Props.TopicAlias = a
		pub.Props.Set(protocol.PropTopicAlias)
	}
	return pub.AppendHeaderOnly(nil, s.conn.version)
}

// encodePublish builds the PUBLISH for one delivery: QoS is the granted
// one, RETAIN as the subscription says, the remaining Message Expiry
// [MQTT-3.3.2-6], the subscription identifiers [MQTT-3.3.4-3], and every
// other property unchanged.
func (s *session) encodePublish(om *outMsg, now time.Time) *protocol.Publish {
	m := om.d.msg
	p := &protocol.Publish{Topic: m.Topic, Payload: m.Payload, QoS: om.d.qos, Retain: om.d.retain,
		Dup: om.dup && om.d.qos > 0, PacketID: om.id}
	if s.conn.version >= protocol.Version5 {
		p.Props = *m.properties()
		if exp, ok := m.remainingExpiry(now); ok {
			p.Props.MessageExpiry = exp
			p.Props.Set(protocol.PropMessageExpiry)
		}
		p.Props.SubscriptionIDs = om.d.subIDs
	}
	return p
}

// reshareAll hands messages this session got through shared subscriptions
// (only those of the groups in only, when set: an UNSUBSCRIBE) to other
// members of their groups. Never-sent ones may always go. A sent QoS 2
// message stays: it is completed when the member reconnects
// [MQTT-4.8.2-4] and given to no other member if its session ends
// [MQTT-4.8.2-5]. A sent QoS 1 message may go once the connection is gone
// (4.8.2), but not on UNSUBSCRIBE, whose in-flight deliveries complete
// [MQTT-3.10.4-3]. A message no other member can take stays here.
func (s *session) reshareAll(ctx sender, only map[sharedRef]bool) {
	if only == nil {
		s.reshareList(ctx, &s.sent, nil, 1) // first: they are older
	}
	s.reshareList(ctx, &s.queue, only, 2)
}

func (s *session) reshareList(ctx sender, l *list.List, only map[sharedRef]bool, maxQoS byte) {
	for e := l.Front(); e != nil; {
		next := e.Next()
		om := e.Value.(*outMsg)
		if sh := om.d.shared; sh != nil && om.d.qos > 0 && om.d.qos <= maxQoS && om.state != outRelSent && (only == nil || only[*sh]) {
			if s.b.reshare(ctx, om.d, s.clientID) {
				s.discard(e, om)
			}
		}
		e = next
	}
}
