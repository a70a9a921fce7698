package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/nanoactor/nanoactor/protocol"
)

// register allocates a packet identifier for p. It fails once the client
// has closed or when all 65535 identifiers are in use.
func (c *Client) register(p *pending) (uint16, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	for range 65535 {
		c.nextID++
		if c.nextID == 0 {
			c.nextID = 1
		}
		if _, busy := c.ids[c.nextID]; !busy {
			c.ids[c.nextID] = p
			return c.nextID, nil
		}
	}
	return 0, errors.New("no free packet identifier")
}

// complete removes the pending request id and returns it (nil if unknown).
func (c *Client) complete(id uint16) *pending {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.ids[id]
	delete(c.ids, id)
	return p
}

func (c *Client) lookup(id uint16) *pending {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[id]
}

// Subscribe sends one SUBSCRIBE with subs and waits for its SUBACK. It
// returns the reason code (granted QoS or failure) of each filter; a
// failure code is not an error here.
func (c *Client) Subscribe(ctx context.Context, subs ...protocol.Subscription) ([]protocol.ReasonCode, error) {
	res := make(chan result, 1)
	id, err := c.register(&pending{done: func(p protocol.Packet, err error) { res <- result{p, err} }})
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	if err := c.write(&protocol.Subscribe{PacketID: id, Filters: subs}); err != nil {
		c.close(err)
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	select {
	case r := <-res:
		if r.err != nil {
			return nil, fmt.Errorf("subscribe: %w", r.err)
		}
		sa, ok := r.p.(*protocol.Suback)
		if !ok {
			return nil, fmt.Errorf("subscribe: unexpected %v", r.p.Type())
		}
		return sa.Reasons, nil
	case <-ctx.Done():
		c.complete(id)
		return nil, fmt.Errorf("subscribe: %w", ctx.Err())
	}
}

type result struct {
	p   protocol.Packet
	err error
}

// Publish sends an application message and, for QoS 1 and 2, waits until
// the handshake completes (PUBACK, or PUBREC-PUBREL-PUBCOMP). A v5 error
// reason in PUBACK, PUBREC or PUBCOMP is returned as the protocol.ReasonCode.
// The caller keeps ownership of pub; its PacketID is overwritten.
func (c *Client) Publish(ctx context.Context, pub *protocol.Publish) error {
	if pub.QoS == 0 {
		return c.PublishAsync(ctx, pub, nil)
	}
	res := make(chan error, 1)
	if err := c.PublishAsync(ctx, pub, func(err error) { res <- err }); err != nil {
		return err
	}
	select {
	case err := <-res:
		return err
	case <-ctx.Done():
		return fmt.Errorf("publish: %w", ctx.Err())
	}
}

// PublishAsync sends an application message without waiting for its
// acknowledgement. For QoS 1 and 2 it first waits (bounded by ctx) for a
// slot of the inflight window, and done (if not nil) is called exactly once
// when the handshake completes or the connection closes, on the reader
// goroutine or the goroutine closing the client: done must not block. For
// QoS 0 done is called before PublishAsync returns. pub is encoded before
// PublishAsync returns; the caller may reuse it.
func (c *Client) PublishAsync(ctx context.Context, pub *protocol.Publish, done func(error)) error {
	if done == nil {
		done = func(error) {}
	}
	if pub.QoS == 0 {
		pub.PacketID = 0
		err := c.write(pub)
		if err != nil {
			c.close(err)
			err = fmt.Errorf("publish: %w", err)
		}
		done(err)
		return err
	}
	select {
	case c.window <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("publish: waiting for inflight window: %w", ctx.Err())
	case <-c.stop:
		return fmt.Errorf("publish: %w", c.Err())
	}
	p := &pending{window: true, qos2: pub.QoS == 2, done: func(p protocol.Packet, err error) {
		if err == nil {
			if a, ok := p.(*protocol.Ack); ok && a.Reason.IsError() {
				err = a.Reason
			}
		}
		if err != nil {
			err = fmt.Errorf("publish: %w", err)
		}
		done(err)
	}}
	id, err := c.register(p)
	if err != nil {
		<-c.window
		return fmt.Errorf("publish: %w", err)
	}
	pub.PacketID = id
	if err := c.write(pub); err != nil {
		c.close(err) // fails p, releases its slot
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// readLoop is the reader goroutine: it owns c.r and c.qos2In, and exits
// (closing c.done) when the connection fails or closes.
func (c *Client) readLoop() {
	defer close(c.done)
	for {
		h, body, err := c.r.Next()
		if err != nil {
			c.close(fmt.Errorf("read: %w", err))
			return
		}
		p, err := protocol.Decode(h, body, c.v)
		if err != nil {
			c.close(fmt.Errorf("decode: %w", err))
			return
		}
		if c.opts.Debug != nil {
			c.debug("<-", describe(p))
		}
		if err := c.handle(p); err != nil {
			c.close(err)
			return
		}
	}
}

// handle reacts to one packet received after CONNACK. p aliases the
// reader's buffer until it returns.
func (c *Client) handle(p protocol.Packet) error {
	switch p := p.(type) {
	case *protocol.Publish:
		return c.receive(p)
	case *protocol.Ack:
		switch p.Kind {
		case protocol.TypePuback, protocol.TypePubcomp:
			if pd := c.complete(p.PacketID); pd != nil {
				<-c.window
				pd.done(p, nil)
			}
		case protocol.TypePubrec:
			pd := c.lookup(p.PacketID)
			if pd == nil {
				// Unknown id: answer so the server can release it [MQTT-4.3.3-*].
				return c.write(&protocol.Ack{Kind: protocol.TypePubrel, PacketID: p.PacketID, Reason: protocol.ReasonPacketIdentifierNotFound})
			}
			if p.Reason.IsError() { // v5: the exchange ends here (4.3.3)
				c.complete(p.PacketID)
				<-c.window
				pd.done(p, nil)
				return nil
			}
			return c.write(&protocol.Ack{Kind: protocol.TypePubrel, PacketID: p.PacketID})
		case protocol.TypePubrel:
			delete(c.qos2In, p.PacketID)
			return c.write(&protocol.Ack{Kind: protocol.TypePubcomp, PacketID: p.PacketID})
		}
	case *protocol.Suback:
		if pd := c.complete(p.PacketID); pd != nil {
			sa := &protocol.Suback{PacketID: p.PacketID, Reasons: append([]protocol.ReasonCode(nil), p.Reasons...)}
			pd.done(sa, nil)
		}
	case *protocol.Unsuback:
		if pd := c.complete(p.PacketID); pd != nil {
			pd.done(p, nil)
		}
	case *protocol.Pingresp:
		c.mu.Lock()
		c.pingOut = false
		c.mu.Unlock()
	case *protocol.Disconnect:
		return fmt.Errorf("disconnected by server: %s", p.Reason)
	default:
		return fmt.Errorf("unexpected %v from server", p.Type())
	}
	return nil
}

// receive delivers an inbound PUBLISH and acknowledges it. A QoS 2 message
// is delivered once: a resend of an id between PUBLISH and PUBREL is only
// acknowledged again.
func (c *Client) receive(p *protocol.Publish) error {
	deliver := true
	if p.QoS == 2 {
		deliver = !c.qos2In[p.PacketID]
		c.qos2In[p.PacketID] = true
	}
	if deliver && c.opts.OnMessage != nil {
		m := Message{Topic: string(p.Topic), Payload: append([]byte(nil), p.Payload...),
			QoS: p.QoS, Retain: p.Retain, Dup: p.Dup}
		if c.v == protocol.Version5 && !p.Props.Empty() {
			m.Props = cloneProps(p.Props)
		}
		c.opts.OnMessage(m)
	}
	switch p.QoS {
	case 1:
		return c.write(&protocol.Ack{Kind: protocol.TypePuback, PacketID: p.PacketID})
	case 2:
		return c.write(&protocol.Ack{Kind: protocol.TypePubrec, PacketID: p.PacketID})
	}
	return nil
}

// cloneProps returns p with every byte field copied out of the read buffer.
func cloneProps(p protocol.Properties) protocol.Properties {
	cp := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		return append([]byte{}, b...)
	}
	p.ContentType = cp(p.ContentType)
	p.ResponseTopic = cp(p.ResponseTopic)
	p.CorrelationData = cp(p.CorrelationData)
	p.AssignedClientID = cp(p.AssignedClientID)
	p.AuthMethod = cp(p.AuthMethod)
	p.AuthData = cp(p.AuthData)
	p.ResponseInfo = cp(p.ResponseInfo)
	p.ServerReference = cp(p.ServerReference)
	p.ReasonString = cp(p.ReasonString)
	p.SubscriptionIDs = append([]int(nil), p.SubscriptionIDs...)
	if p.User != nil {
		u := make([]protocol.UserProperty, len(p.User))
		for i, kv := range p.User {
			u[i] = protocol.UserProperty{Key: cp(kv.Key), Value: cp(kv.Value)}
		}
		p.User = u
	}
	return p
}

// describe is a one-line summary of p for debug output.
func describe(p protocol.Packet) string {
	switch p := p.(type) {
	case *protocol.Connect:
		return fmt.Sprintf("CONNECT level=%d client_id=%q clean=%t keepalive=%d", p.Level, p.ClientID, p.CleanStart, p.KeepAlive)
	case *protocol.Publish:
		return fmt.Sprintf("PUBLISH topic=%q qos=%d retain=%t dup=%t id=%d (%d bytes)", p.Topic, p.QoS, p.Retain, p.Dup, p.PacketID, len(p.Payload))
	case *protocol.Ack:
		return fmt.Sprintf("%v id=%d reason=%s", p.Kind, p.PacketID, p.Reason)
	case *protocol.Subscribe:
		s := fmt.Sprintf("SUBSCRIBE id=%d", p.PacketID)
		for _, f := range p.Filters {
			s += fmt.Sprintf(" %q/qos%d", f.Filter, f.QoS)
		}
		return s
	case *protocol.Suback:
		return fmt.Sprintf("SUBACK id=%d reasons=%v", p.PacketID, p.Reasons)
	case *protocol.Disconnect:
		return fmt.Sprintf("DISCONNECT reason=%s", p.Reason)
	}
	return p.Type().String()
}
