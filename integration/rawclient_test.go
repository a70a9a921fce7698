package integration

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nanoactor/nanoactor/protocol"
)

// rawWait is how long a raw client waits for a packet it expects: generous,
// since the machine is small and busy. Waiting for the ABSENCE of a packet
// uses the shorter rawQuiet.
const (
	rawWait  = 5 * time.Second
	rawQuiet = 400 * time.Millisecond
)

// rawConn is a hand-driven MQTT client over a plain TCP socket. It sends
// exactly the packets or bytes a test gives it (including ones the codec
// refuses to encode) and decodes what the broker sends with the codec in
// protocol/. A reader goroutine (owned by the rawConn, ended by closing the
// socket, which t.Cleanup does) turns the byte stream into rawIn values.
type rawConn struct {
	t   *testing.T
	nc  net.Conn
	v   protocol.Version
	in  chan rawIn
	end error // why the read side ended; written before in is closed
	pid uint16
}

// rawIn is one packet received from the broker, with its fixed header (for
// the DUP / RETAIN / QoS bits) or the error decoding it.
type rawIn struct {
	h    protocol.Header
	body []byte // the bytes after the fixed header, for diagnostics
	p    protocol.Packet
	err  error
}

// rawDial opens a socket to the broker that speaks protocol version v.
func rawDial(t *testing.T, b *broker, v protocol.Version) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", b.addr, rawWait)
	if err != nil {
		t.Fatalf("dial %s: %v", b.addr, err)
	}
	c := &rawConn{t: t, nc: nc, v: v, in: make(chan rawIn, 1024)}
	t.Cleanup(func() { nc.Close() })
	go c.readLoop()
	return c
}

func (c *rawConn) readLoop() {
	r := protocol.NewReader(c.nc, 0)
	r.SetMaxPacketSize(0) // the test checks sizes itself
	for {
		h, body, err := r.Next()
		if err != nil {
			c.end = err
			close(c.in)
			return
		}
		body = append([]byte(nil), body...)
		p, err := protocol.Decode(h, body, c.v)
		c.in <- rawIn{h: h, body: body, p: p, err: err}
	}
}

// local is the client's address: the "remote" the broker logs.
func (c *rawConn) local() string { return c.nc.LocalAddr().String() }

// write sends raw bytes.
func (c *rawConn) write(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(rawWait))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// send encodes p for the connection's version and sends it.
func (c *rawConn) send(p protocol.Packet) {
	c.t.Helper()
	buf, err := p.Append(nil, c.v)
	if err != nil {
		c.t.Fatalf("encode %s: %v", p.Type(), err)
	}
	c.write(buf)
}

// nextID returns a fresh packet identifier for SUBSCRIBE / PUBLISH.
func (c *rawConn) nextID() uint16 {
	c.pid++
	if c.pid == 0 {
		c.pid = 1
	}
	return c.pid
}

// next returns the next packet, failing the test on timeout, close or a
// packet that does not decode.
func (c *rawConn) next(d time.Duration) rawIn {
	c.t.Helper()
	in := c.nextRaw(d)
	if in.err != nil {
		c.t.Fatalf("broker sent an undecodable %s (body % x): %v", in.h.Type, in.body, in.err)
	}
	return in
}

// nextRaw returns the next packet's header and bytes, decoded or not,
// failing the test on timeout or close.
func (c *rawConn) nextRaw(d time.Duration) rawIn {
	c.t.Helper()
	select {
	case in, ok := <-c.in:
		if !ok {
			c.t.Fatalf("connection closed while waiting for a packet: %v", c.end)
		}
		return in
	case <-time.After(d):
		c.t.Fatalf("no packet within %v", d)
	}
	panic("unreachable")
}

// rawNext returns the next packet, which must be of type T.
func rawNext[T protocol.Packet](c *rawConn) T {
	c.t.Helper()
	in := c.next(rawWait)
	p, ok := in.p.(T)
	if !ok {
		c.t.Fatalf("got %s %s, want %T", in.h.Type, rawDescribe(in), *new(T))
	}
	return p
}

// nextPublish returns the next packet, which must be a PUBLISH, with its
// header.
func (c *rawConn) nextPublish() (*protocol.Publish, protocol.Header) {
	c.t.Helper()
	in := c.next(rawWait)
	p, ok := in.p.(*protocol.Publish)
	if !ok {
		c.t.Fatalf("got %s %s, want PUBLISH", in.h.Type, rawDescribe(in))
	}
	return p, in.h
}

// nextAck returns the next packet, which must be the ack of kind k for id.
func (c *rawConn) nextAck(k protocol.Type, id uint16) *protocol.Ack {
	c.t.Helper()
	in := c.next(rawWait)
	a, ok := in.p.(*protocol.Ack)
	if !ok || a.Kind != k || a.PacketID != id {
		c.t.Fatalf("got %s %s, want %s id %d", in.h.Type, rawDescribe(in), k, id)
	}
	return a
}

// expectNone fails if any packet arrives (or the connection closes) within d.
func (c *rawConn) expectNone(d time.Duration) {
	c.t.Helper()
	select {
	case in, ok := <-c.in:
		if !ok {
			c.t.Fatalf("connection closed, want it open and quiet: %v", c.end)
		}
		c.t.Fatalf("unexpected %s %s", in.h.Type, rawDescribe(in))
	case <-time.After(d):
	}
}

// expectClosed waits for the broker to close the connection, failing if a
// packet arrives first.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	select {
	case in, ok := <-c.in:
		if ok {
			c.t.Fatalf("got %s %s, want the connection closed", in.h.Type, rawDescribe(in))
		}
		if !errors.Is(c.end, io.EOF) && !errors.Is(c.end, syscall.ECONNRESET) && !errors.Is(c.end, io.ErrUnexpectedEOF) {
			c.t.Fatalf("read side ended with %v, want EOF or reset", c.end)
		}
	case <-time.After(rawWait):
		c.t.Fatalf("connection still open after %v", rawWait)
	}
}

// expectDisconnect wants a v5 DISCONNECT with reason rc, then the close
// [MQTT-4.13.1-1] [MQTT-3.14.4-2].
func (c *rawConn) expectDisconnect(rc protocol.ReasonCode) {
	c.t.Helper()
	in := c.next(rawWait)
	d, ok := in.p.(*protocol.Disconnect)
	if !ok || d.Reason != rc {
		c.t.Fatalf("got %s %s, want DISCONNECT %#x (%s)", in.h.Type, rawDescribe(in), byte(rc), rc)
	}
	c.expectClosed()
}

// expectConnack wants a CONNACK with reason rc (a v5 reason; for 3.1.1 the
// codec maps the return code back to one) and returns it.
func (c *rawConn) expectConnack(rc protocol.ReasonCode) *protocol.Connack {
	c.t.Helper()
	in := c.next(rawWait)
	a, ok := in.p.(*protocol.Connack)
	if !ok || a.Reason != rc {
		c.t.Fatalf("got %s %s, want CONNACK %#x (%s)", in.h.Type, rawDescribe(in), byte(rc), rc)
	}
	return a
}

// sub sends one SUBSCRIBE with subs and returns the SUBACK reasons.
// subID > 0 adds a Subscription Identifier.
func (c *rawConn) sub(subID int, subs ...protocol.Subscription) []protocol.ReasonCode {
	c.t.Helper()
	s := &protocol.Subscribe{PacketID: c.nextID(), Filters: subs}
	if subID > 0 {
		s.Props.SubscriptionIDs = []int{subID}
	}
	c.send(s)
	in := c.next(rawWait)
	a, ok := in.p.(*protocol.Suback)
	if !ok || a.PacketID != s.PacketID {
		c.t.Fatalf("got %s %s, want SUBACK id %d", in.h.Type, rawDescribe(in), s.PacketID)
	}
	return a.Reasons
}

// subOK subscribes to one filter at qos and requires it granted.
func (c *rawConn) subOK(filter string, qos byte) {
	c.t.Helper()
	rc := c.sub(0, protocol.Subscription{Filter: []byte(filter), QoS: qos})
	if len(rc) != 1 || rc[0] != protocol.ReasonCode(qos) {
		c.t.Fatalf("SUBACK for %q: %v, want granted QoS %d", filter, rc, qos)
	}
}

// pub publishes and completes the handshake of its QoS from the client's
// side (PUBACK, or PUBREC / PUBREL / PUBCOMP), returning the packet id.
func (c *rawConn) pub(topic string, qos byte, payload string) uint16 {
	c.t.Helper()
	p := &protocol.Publish{Topic: []byte(topic), QoS: qos, Payload: []byte(payload)}
	return c.pubPacket(p)
}

func (c *rawConn) pubPacket(p *protocol.Publish) uint16 {
	c.t.Helper()
	if p.QoS > 0 && p.PacketID == 0 {
		p.PacketID = c.nextID()
	}
	c.send(p)
	switch p.QoS {
	case 1:
		c.nextAck(protocol.TypePuback, p.PacketID)
	case 2:
		c.nextAck(protocol.TypePubrec, p.PacketID)
		c.send(&protocol.Ack{Kind: protocol.TypePubrel, PacketID: p.PacketID})
		c.nextAck(protocol.TypePubcomp, p.PacketID)
	}
	return p.PacketID
}

// rawMsg is a PUBLISH received from the broker, with its fixed header.
type rawMsg struct {
	p *protocol.Publish
	h protocol.Header
}

// collect receives exactly n PUBLISHes and acknowledges each as its QoS
// asks (PUBACK; PUBREC, then PUBCOMP for the PUBREL), in whatever order the
// broker interleaves them. It fails on any other packet, or on a PUBLISH
// beyond the n-th while a PUBREL is still awaited.
func (c *rawConn) collect(n int) []rawMsg {
	c.t.Helper()
	var out []rawMsg
	rel := map[uint16]bool{}
	for len(out) < n || len(rel) > 0 {
		in := c.next(rawWait)
		switch p := in.p.(type) {
		case *protocol.Publish:
			if len(out) == n {
				c.t.Fatalf("PUBLISH beyond the %d expected: %s", n, rawDescribe(in))
			}
			out = append(out, rawMsg{p: p, h: in.h})
			switch p.QoS {
			case 1:
				c.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: p.PacketID})
			case 2:
				c.send(&protocol.Ack{Kind: protocol.TypePubrec, PacketID: p.PacketID})
				rel[p.PacketID] = true
			}
		case *protocol.Ack:
			if p.Kind != protocol.TypePubrel || !rel[p.PacketID] {
				c.t.Fatalf("unexpected %s", rawDescribe(in))
			}
			delete(rel, p.PacketID)
			c.send(&protocol.Ack{Kind: protocol.TypePubcomp, PacketID: p.PacketID})
		default:
			c.t.Fatalf("got %s %s while collecting PUBLISHes", in.h.Type, rawDescribe(in))
		}
	}
	return out
}

// recv receives one PUBLISH and completes its handshake.
func (c *rawConn) recv() (*protocol.Publish, protocol.Header) {
	c.t.Helper()
	m := c.collect(1)[0]
	return m.p, m.h
}

// poll returns the next PUBLISH if one arrives within d, acknowledging a
// QoS 1 one. It fails on any other packet or a close.
func (c *rawConn) poll(d time.Duration) (*protocol.Publish, bool) {
	c.t.Helper()
	select {
	case in, ok := <-c.in:
		if !ok {
			c.t.Fatalf("connection closed: %v", c.end)
		}
		p, isPub := in.p.(*protocol.Publish)
		if !isPub || p.QoS == 2 {
			c.t.Fatalf("poll: got %s %s", in.h.Type, rawDescribe(in))
		}
		if p.QoS == 1 {
			c.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: p.PacketID})
		}
		return p, true
	case <-time.After(d):
		return nil, false
	}
}

// disconnect sends a normal DISCONNECT (or one with reason rc) and closes.
func (c *rawConn) disconnect(rc protocol.ReasonCode) {
	c.t.Helper()
	c.send(&protocol.Disconnect{Reason: rc})
	c.nc.Close()
}

// drop closes the socket without DISCONNECT: an abnormal close.
func (c *rawConn) drop() { c.nc.Close() }

// rawGone waits until the broker has logged the end of c's connection, so
// that what a test does next meets an offline session, not one still
// attached to the closing connection.
func rawGone(t *testing.T, b *broker, c *rawConn) {
	t.Helper()
	remote := `"remote":"` + c.local() + `"`
	eventually(t, rawWait, "the broker to see "+c.local()+" go", func() bool {
		return b.logs.Count(remote, `"msg":"client disconnected"`)+b.logs.Count(remote, `"msg":"connection closed"`) > 0
	})
}

// rawConnect dials and connects a v5 client with id (clean start, keepalive
// 30 s unless mod changes them) and requires CONNACK Success.
func rawConnect(t *testing.T, b *broker, id string, mod func(*protocol.Connect)) (*rawConn, *protocol.Connack) {
	t.Helper()
	c := rawDial(t, b, protocol.Version5)
	cp := &protocol.Connect{Level: protocol.Version5, CleanStart: true, KeepAlive: 30, ClientID: []byte(id)}
	if mod != nil {
		mod(cp)
	}
	c.send(cp)
	return c, c.expectConnack(protocol.ReasonSuccess)
}

// rawPersistent connects with Clean Start cleanStart and a Session Expiry
// Interval of expiry seconds.
func rawPersistent(t *testing.T, b *broker, id string, cleanStart bool, expiry uint32) (*rawConn, *protocol.Connack) {
	t.Helper()
	return rawConnect(t, b, id, func(cp *protocol.Connect) {
		cp.CleanStart = cleanStart
		cp.Props.SessionExpiry = expiry
		cp.Props.Set(protocol.PropSessionExpiry)
	})
}

func rawDescribe(in rawIn) string {
	switch p := in.p.(type) {
	case *protocol.Publish:
		return fmt.Sprintf("{topic %q payload %q qos %d id %d dup %v retain %v subids %v}",
			p.Topic, p.Payload, p.QoS, p.PacketID, p.Dup, p.Retain, p.Props.SubscriptionIDs)
	case *protocol.Disconnect:
		return fmt.Sprintf("{reason %#x %s %q}", byte(p.Reason), p.Reason, p.Props.ReasonString)
	case *protocol.Connack:
		return fmt.Sprintf("{reason %#x %s present %v}", byte(p.Reason), p.Reason, p.SessionPresent)
	case *protocol.Ack:
		return fmt.Sprintf("{%s id %d reason %#x}", p.Kind, p.PacketID, byte(p.Reason))
	case *protocol.Suback:
		return fmt.Sprintf("{id %d reasons %v}", p.PacketID, p.Reasons)
	}
	return fmt.Sprintf("%+v", in.p)
}

// Hand-built packets, for what the codec (rightly) refuses to encode.

// rawVarint encodes a Variable Byte Integer (section 1.5.5).
func rawVarint(n int) []byte {
	var b []byte
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

// rawPacket is a fixed header (first byte, Remaining Length) and body.
func rawPacket(first byte, body ...[]byte) []byte {
	n := 0
	for _, b := range body {
		n += len(b)
	}
	out := append([]byte{first}, rawVarint(n)...)
	for _, b := range body {
		out = append(out, b...)
	}
	return out
}

// rawStr is a UTF-8 Encoded String: two length bytes and the bytes.
func rawStr(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

// rawProps is a v5 property block: length, then the properties as given.
func rawProps(props ...byte) []byte { return append(rawVarint(len(props)), props...) }

// rawV5Connect is a v5 CONNECT, Clean Start, keepalive 30, whose property
// block is props exactly as given.
func rawV5Connect(clientID string, props []byte) []byte {
	return rawPacket(0x10, // CONNECT
		rawStr("MQTT"),     // protocol name
		[]byte{5, 0x02},    // level 5, Clean Start
		[]byte{0x00, 0x1E}, // keepalive 30
		props,              // properties
		rawStr(clientID))   // client id
}

// rawOneLog waits until the broker has logged a line naming the raw
// client's address with reason want, then requires it to be the only line
// naming that address with a reason: one decision, one log line.
func rawOneLog(t *testing.T, b *broker, c *rawConn, want string) {
	t.Helper()
	remote := `"remote":"` + c.local() + `"`
	eventually(t, rawWait, "a log line for "+c.local()+" with reason "+want, func() bool {
		return b.logs.Count(remote, `"reason":`, want) >= 1
	})
	time.Sleep(100 * time.Millisecond) // let a second line, if any, land
	if n := b.logs.Count(remote, `"reason":`); n != 1 {
		var lines []string
		for _, l := range strings.Split(b.logs.String(), "\n") {
			if strings.Contains(l, remote) {
				lines = append(lines, l)
			}
		}
		t.Fatalf("%d log lines name %s with a reason, want 1:\n%s", n, c.local(), strings.Join(lines, "\n"))
	}
}

// rawBystander is a healthy v5 client connected while a test misbehaves on
// another socket; check proves it is still served.
type rawBystander struct {
	c     *rawConn
	topic string
	n     int
}

func newRawBystander(t *testing.T, b *broker) *rawBystander {
	t.Helper()
	c, _ := rawConnect(t, b, "bystander", nil)
	by := &rawBystander{c: c, topic: "bystander/echo"}
	c.subOK(by.topic, 1)
	return by
}

// check publishes a QoS 1 message to the bystander's own subscription and
// requires both the PUBACK and the delivery.
func (by *rawBystander) check() {
	c := by.c
	c.t.Helper()
	by.n++
	payload := fmt.Sprintf("ping %d", by.n)
	id := c.nextID()
	c.send(&protocol.Publish{Topic: []byte(by.topic), QoS: 1, PacketID: id, Payload: []byte(payload)})
	gotAck, gotMsg := false, false
	for !gotAck || !gotMsg {
		in := c.next(rawWait)
		switch p := in.p.(type) {
		case *protocol.Ack:
			if p.Kind != protocol.TypePuback || p.PacketID != id {
				c.t.Fatalf("bystander: got %s", rawDescribe(in))
			}
			gotAck = true
		case *protocol.Publish:
			if string(p.Payload) != payload {
				c.t.Fatalf("bystander: got %s, want payload %q", rawDescribe(in), payload)
			}
			c.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: p.PacketID})
			gotMsg = true
		default:
			c.t.Fatalf("bystander: got %s %s", in.h.Type, rawDescribe(in))
		}
	}
}
