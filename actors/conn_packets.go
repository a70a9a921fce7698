package actors

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/nanoactor/nanoactor/protocol"
)

// packet handles one decoded packet from the client.
func (c *conn) packet(ctx actor.Context, m *inbound) {
	if c.closed {
		c.release(m)
		return
	}
	if cp, ok := m.pkt.(*protocol.Connect); ok && !c.connecting && !c.connected {
		c.connect(ctx, cp)
		return
	}
	if c.session == nil {
		// Between CONNECT and the session's answer: keep packets in order
		// (bounded by reader credit); nothing may be sent before CONNACK
		// [MQTT-3.2.0-1], so even PINGREQ and DISCONNECT wait. A second
		// CONNECT waits too: the session may have sent the CONNACK, so the
		// answer is a DISCONNECT after it.
		c.early = append(c.early, m)
		return
	}
	c.handle(ctx, m)
}

// handle processes one packet once the session is known.
func (c *conn) handle(ctx actor.Context, m *inbound) {
	switch p := m.pkt.(type) {
	case *protocol.Connect:
		// [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
		c.release(m)
		c.fail(ctx, protocol.ReasonProtocolError, errors.New("second CONNECT"), true)
		return
	case *protocol.Pingreq:
		c.release(m)
		c.sendNow(&protocol.Pingresp{}) // [MQTT-3.12.4-1]
		return
	case *protocol.Disconnect:
		c.release(m)
		c.disconnect(ctx, p)
		return
	case *protocol.Publish:
		if err, rc := c.checkPublish(p); err != nil {
			c.release(m)
			c.fail(ctx, rc, err, true)
			return
		}
		if p.QoS > 0 && c.quota.Add(1) > int32(c.b.opt.ReceiveMaximum) && c.version >= protocol.Version5 {
			// [MQTT-3.3.4-7] more unacknowledged QoS 1/2 than our Receive Maximum.
			c.release(m)
			c.fail(ctx, protocol.ReasonReceiveMaximumExceeded, fmt.Errorf("more than %d unacknowledged QoS 1/2 publishes", c.b.opt.ReceiveMaximum), true)
			return
		}
	case *protocol.Subscribe:
		if len(p.Props.SubscriptionIDs) > 0 && !c.b.opt.SubIDAvailable {
			c.release(m)
			c.fail(ctx, protocol.ReasonSubscriptionIdentifiersNotSupported, errors.New("subscription identifier not supported"), true)
			return
		}
	case *protocol.Ack, *protocol.Unsubscribe:
	case *protocol.Auth:
		// No enhanced authentication was started: AUTH is a protocol error
		// [MQTT-4.12.0-1].
		c.release(m)
		c.fail(ctx, protocol.ReasonProtocolError, errors.New("unexpected AUTH"), true)
		return
	default:
		// CONNACK, SUBACK, UNSUBACK, PINGRESP: only servers send these.
		c.release(m)
		c.fail(ctx, protocol.ReasonProtocolError, fmt.Errorf("unexpected %s from client", m.pkt.Type()), true)
		return
	}
	c.toSession(ctx, m) // the same message, now for the session (one allocation per packet)
}

// toSession passes a client's packet to its session, through the
// session's mailbox, which the session names in attached (without one, a
// plain Send): if the session is idle, it runs at once on
// this goroutine — nearly always the connection's reader — for a bounded
// number of messages (see mailbox.postLocal). That is one goroutine
// hand-off fewer per packet: the publisher's PUBACK, and the routing of
// its message, happen where the PUBLISH was read; a subscriber's PUBACK
// frees its window where it was read.
func (c *conn) toSession(ctx actor.Context, m *inbound) {
	if c.smb != nil {
		c.smb.postLocal(m)
		return
	}
	ctx.Send(c.session, m)
}

func (c *conn) release(m *inbound) {
	if m.cost > 0 {
		c.credit.Release(m.cost)
	}
}

// sendNow enqueues a packet on the writer.
func (c *conn) sendNow(p protocol.Packet) {
	buf, err := p.Append(nil, c.version)
	if err == nil {
		c.out.Enqueue(buf)
	}
}

// checkPublish enforces the rules a connection owns: Maximum QoS,
// Retain Available, topic aliases, client-sent subscription identifiers.
func (c *conn) checkPublish(p *protocol.Publish) (error, protocol.ReasonCode) {
	o := &c.b.opt
	if p.QoS > o.MaximumQoS {
		return fmt.Errorf("publish qos %d above maximum %d", p.QoS, o.MaximumQoS), protocol.ReasonQoSNotSupported // [MQTT-3.2.2-11]
	}
	if o.MaxTopicLevels > 0 && levels(p.Topic) > o.MaxTopicLevels {
		return fmt.Errorf("topic of %d levels, max_topic_levels %d", levels(p.Topic), o.MaxTopicLevels), protocol.ReasonTopicNameInvalid
	}
	if p.Retain && !o.RetainAvailable {
		return errors.New("retain not available"), protocol.ReasonRetainNotSupported // [MQTT-3.2.2-14]
	}
	if c.version < protocol.Version5 {
		return nil, 0
	}
	if err := p.CheckFromClient(); err != nil {
		return err, protocol.ReasonProtocolError // [MQTT-3.3.4-6]
	}
	if p.Props.Has(protocol.PropTopicAlias) {
		a := p.Props.TopicAlias
		if a == 0 || a > o.TopicAliasMax {
			// [MQTT-3.3.2-9] [MQTT-3.3.2-10] alias outside 1..Topic Alias Maximum.
			return fmt.Errorf("topic alias %d outside 1..%d", a, o.TopicAliasMax), protocol.ReasonTopicAliasInvalid
		}
		if len(p.Topic) == 0 {
			t, ok := c.aliases[a]
			if !ok {
				return fmt.Errorf("topic alias %d not set", a), protocol.ReasonProtocolError // 3.3.2.3.4
			}
			p.Topic = t
		} else {
			if c.aliases == nil {
				c.aliases = map[uint16][]byte{}
			}
			c.aliases[a] = p.Topic // [MQTT-3.3.2-12] the alias now names this topic
		}
		p.Props.Clear(protocol.PropTopicAlias)
	}
	return nil, 0
}

// disconnect handles the client's DISCONNECT: a normal one discards the
// will [MQTT-3.14.4-3]; v5 0x04 asks for it; a v5 Session Expiry change
// from 0 to non-zero is a protocol error [MQTT-3.14.2-2].
func (c *conn) disconnect(ctx actor.Context, d *protocol.Disconnect) {
	var expiry *time.Duration
	if c.version >= protocol.Version5 && d.Props.Has(protocol.PropSessionExpiry) {
		if c.expiry0 && d.Props.SessionExpiry != 0 {
			c.fail(ctx, protocol.ReasonProtocolError, errors.New("session expiry set on DISCONNECT after 0 on CONNECT"), true)
			return
		}
		e := time.Duration(d.Props.SessionExpiry) * time.Second
		if e > c.b.opt.MaxSessionExpiry {
			e = c.b.opt.MaxSessionExpiry
		}
		expiry = &e
	}
	sendWill := c.version >= protocol.Version5 && d.Reason == protocol.ReasonDisconnectWithWill
	c.closed = true
	c.out.CloseWith(0, nil) // [MQTT-3.14.4-1] the client closes; so do we
	c.detach(ctx, sendWill, expiry)
	c.log().Debug("client disconnected", "reason", d.Reason.String())
	c.stop(ctx)
}
