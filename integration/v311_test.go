package integration

// MQTT 3.1.1 (and 3.1) black-box tests: eclipse/paho.mqtt.golang as the
// independent client, and a raw socket with the protocol codec for the
// exact bytes and for hostile input. Normative statements are cited with
// the tags of the OASIS MQTT 3.1.1 standard.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/nanoactor/nanoactor/protocol"
)

// p3Wait bounds every wait for something the broker should do promptly.
const p3Wait = 5 * time.Second

// p3Quiet is how long a test waits to be reasonably sure that something
// does not happen, where no later event can prove it.
const p3Quiet = 300 * time.Millisecond

// p3Msg is one message as a paho.mqtt.golang client received it.
type p3Msg struct {
	Topic    string
	Payload  string
	QoS      byte
	Retained bool
	Dup      bool
}

func (m p3Msg) String() string {
	return fmt.Sprintf("%s %q qos=%d retain=%v dup=%v", m.Topic, m.Payload, m.QoS, m.Retained, m.Dup)
}

// p3Inbox collects every message a client receives. Clients use only the
// default publish handler (subscriptions carry no callback), so one
// PUBLISH on the wire is exactly one entry here, however many of the
// client's filters match it.
type p3Inbox struct{ ch chan p3Msg }

func newP3Inbox() *p3Inbox { return &p3Inbox{ch: make(chan p3Msg, 100000)} }

func (in *p3Inbox) handle(_ mqtt.Client, m mqtt.Message) {
	in.ch <- p3Msg{Topic: m.Topic(), Payload: string(m.Payload()), QoS: m.Qos(), Retained: m.Retained(), Dup: m.Duplicate()}
}

// next returns the next message or fails the test after d.
func (in *p3Inbox) next(t *testing.T, d time.Duration, what string) p3Msg {
	t.Helper()
	select {
	case m := <-in.ch:
		return m
	case <-time.After(d):
		t.Fatalf("no message within %v: %s", d, what)
		return p3Msg{}
	}
}

// collect returns the next n messages or fails the test after d.
func (in *p3Inbox) collect(t *testing.T, n int, d time.Duration, what string) []p3Msg {
	t.Helper()
	out := make([]p3Msg, 0, n)
	deadline := time.After(d)
	for len(out) < n {
		select {
		case m := <-in.ch:
			out = append(out, m)
		case <-deadline:
			t.Fatalf("%s: got %d of %d messages within %v: %v", what, len(out), n, d, out)
		}
	}
	return out
}

// none fails the test if a message arrives within d.
func (in *p3Inbox) none(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case m := <-in.ch:
		t.Fatalf("%s: unexpected message %v", what, m)
	case <-time.After(d):
	}
}

// p3Options returns paho options for a 3.1.1 client of b: no automatic
// reconnect, clean session, generous timeouts.
func p3Options(b *broker, id string) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().AddBroker("tcp://" + b.addr).SetClientID(id).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(p3Wait).SetWriteTimeout(p3Wait).SetKeepAlive(30 * time.Second).
		SetOrderMatters(true)
}

// p3Client is a connected paho.mqtt.golang client and its inbox.
type p3Client struct {
	mqtt.Client
	in      *p3Inbox
	present bool // Session Present of the CONNACK
}

// p3Connect connects a client with o (its default publish handler is
// replaced by the inbox). The client is disconnected when the test ends.
func p3Connect(t *testing.T, o *mqtt.ClientOptions) *p3Client {
	t.Helper()
	c, err := p3TryConnect(t, o)
	if err != nil {
		t.Fatalf("connect %s: %v", o.ClientID, err)
	}
	return c
}

// p3TryConnect is p3Connect returning the connect error instead.
func p3TryConnect(t *testing.T, o *mqtt.ClientOptions) (*p3Client, error) {
	t.Helper()
	in := newP3Inbox()
	o.SetDefaultPublishHandler(in.handle)
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(p3Wait) {
		return nil, fmt.Errorf("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if c.IsConnectionOpen() {
			c.Disconnect(50)
		}
	})
	return &p3Client{Client: c, in: in, present: tok.(*mqtt.ConnectToken).SessionPresent()}, nil
}

// sub subscribes to filter at qos and returns the granted code.
func (c *p3Client) sub(t *testing.T, filter string, qos byte) byte {
	t.Helper()
	tok := c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(p3Wait) {
		t.Fatalf("subscribe %q: no SUBACK", filter)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("subscribe %q: %v", filter, err)
	}
	return tok.(*mqtt.SubscribeToken).Result()[filter]
}

// pub publishes and, for QoS 1 and 2, waits for the broker's PUBACK or
// PUBCOMP (for QoS 0, until the packet is written).
func (c *p3Client) pub(t *testing.T, topic string, qos byte, retained bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, retained, payload)
	if !tok.WaitTimeout(p3Wait) {
		t.Fatalf("publish %s qos %d: not acknowledged within %v", topic, qos, p3Wait)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish %s qos %d: %v", topic, qos, err)
	}
}

// p3Alive proves the broker still serves an unrelated client: c
// publishes to a topic only c subscribed to and receives it.
func p3Alive(t *testing.T, c *p3Client, topic string) {
	t.Helper()
	c.pub(t, topic, 1, false, "alive")
	for {
		m := c.in.next(t, p3Wait, "unrelated client's own message on "+topic)
		if m.Topic != topic {
			continue // another test's asynchronous message (a will, say)
		}
		if m.Payload != "alive" {
			t.Fatalf("unrelated client got %v, want %s \"alive\"", m, topic)
		}
		return
	}
}

// p3Raw is a raw MQTT connection: packets are written with the protocol
// codec (or as raw bytes) and a reader goroutine decodes what the broker
// sends.
type p3Raw struct {
	t    *testing.T
	nc   net.Conn
	v    protocol.Version
	in   chan protocol.Packet // closed when the connection ends
	mu   sync.Mutex
	rerr error // why the reader stopped
}

// p3Dial opens a raw connection speaking protocol version v (the version
// used to encode and decode everything but CONNECT).
func p3Dial(t *testing.T, addr string, v protocol.Version) *p3Raw {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, p3Wait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	r := &p3Raw{t: t, nc: nc, v: v, in: make(chan protocol.Packet, 1024)}
	t.Cleanup(func() { nc.Close() })
	go r.readLoop()
	return r
}

func (r *p3Raw) readLoop() {
	defer close(r.in)
	rd := protocol.NewReader(r.nc, 0)
	rd.SetMaxPacketSize(0)
	for {
		h, body, err := rd.Next()
		if err == nil {
			var p protocol.Packet
			p, err = protocol.Decode(h, append([]byte(nil), body...), r.v)
			if err == nil {
				r.in <- p
				continue
			}
		}
		r.mu.Lock()
		r.rerr = err
		r.mu.Unlock()
		return
	}
}

func (r *p3Raw) readErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rerr
}

// write sends raw bytes.
func (r *p3Raw) write(b []byte) {
	r.t.Helper()
	r.nc.SetWriteDeadline(time.Now().Add(p3Wait))
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// send encodes p in the connection's version and writes it.
func (r *p3Raw) send(p protocol.Packet) {
	r.t.Helper()
	b, err := p.Append(nil, r.v)
	if err != nil {
		r.t.Fatalf("encode %s: %v", p.Type(), err)
	}
	r.write(b)
}

// next returns the next packet from the broker, or fails the test.
func (r *p3Raw) next(d time.Duration, what string) protocol.Packet {
	r.t.Helper()
	select {
	case p, ok := <-r.in:
		if !ok {
			r.t.Fatalf("%s: connection closed (%v)", what, r.readErr())
		}
		return p
	case <-time.After(d):
		r.t.Fatalf("%s: nothing received within %v", what, d)
	}
	return nil
}

// expect returns the next packet, failing unless it has type typ.
func (r *p3Raw) expect(typ protocol.Type, what string) protocol.Packet {
	r.t.Helper()
	p := r.next(p3Wait, what)
	if p.Type() != typ {
		r.t.Fatalf("%s: got %s %+v, want %s", what, p.Type(), p, typ)
	}
	return p
}

// closed waits up to d for the broker to close the connection and
// returns every packet received before that. It fails the test if the
// connection is still open after d.
func (r *p3Raw) closed(d time.Duration, what string) []protocol.Packet {
	r.t.Helper()
	var got []protocol.Packet
	deadline := time.After(d)
	for {
		select {
		case p, ok := <-r.in:
			if !ok {
				err := r.readErr()
				if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) &&
					!strings.Contains(err.Error(), "reset by peer") {
					r.t.Fatalf("%s: connection ended with %v, want a close by the broker", what, err)
				}
				return got
			}
			got = append(got, p)
		case <-deadline:
			r.t.Fatalf("%s: connection still open after %v (received %v)", what, d, got)
		}
	}
}

// connect sends c and returns the broker's CONNACK.
func (r *p3Raw) connect(c *protocol.Connect) *protocol.Connack {
	r.t.Helper()
	r.send(c)
	return r.expect(protocol.TypeConnack, "CONNACK").(*protocol.Connack)
}

// p3RawConnect dials and connects a 3.1.1 client with id (clean session),
// failing the test unless the broker accepts it.
func p3RawConnect(t *testing.T, b *broker, id string, mod func(*protocol.Connect)) *p3Raw {
	t.Helper()
	r := p3Dial(t, b.addr, protocol.Version311)
	c := &protocol.Connect{Level: protocol.Version311, CleanStart: true, KeepAlive: 30, ClientID: []byte(id)}
	if mod != nil {
		mod(c)
	}
	if ack := r.connect(c); ack.Reason != protocol.ReasonSuccess {
		t.Fatalf("connect %q refused: %v", id, ack.Reason)
	}
	return r
}

// p3Frame builds a raw packet: the first byte, the Remaining Length and
// the body, for packets the codec refuses to encode.
func p3Frame(first byte, body ...byte) []byte {
	out := []byte{first}
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

// p3Str is a UTF-8 Encoded String field: two-byte length and s.
func p3Str(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

func p3Cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// TestV311ConnectReturnCodes checks the CONNACK return codes of 3.1.1
// and 3.1, with exact bytes from a raw socket and through paho.
func TestV311ConnectReturnCodes(t *testing.T) {
	b := startBroker(t, "")

	t.Run("empty id without clean session is rejected 0x02", func(t *testing.T) {
		// [MQTT-3.1.3-8] CONNACK 0x02 (Identifier rejected), then close.
		// [MQTT-3.2.2-4] Session Present 0 with a non-zero code; [MQTT-3.2.2-5] close.
		r := p3Dial(t, b.addr, protocol.Version311)
		r.write(p3Frame(0x10, p3Cat(p3Str("MQTT"), []byte{4, 0x00, 0, 30}, p3Str(""))...))
		got := r.closed(p3Wait, "after refused CONNECT")
		if len(got) != 1 || got[0].Type() != protocol.TypeConnack {
			t.Fatalf("got %v, want exactly one CONNACK", got)
		}
		ack := got[0].(*protocol.Connack)
		if ack.Reason != protocol.ReasonClientIdentifierNotValid || ack.SessionPresent {
			t.Fatalf("CONNACK %+v, want return code 0x02 and session present 0", ack)
		}
	})

	t.Run("paho empty id without clean session", func(t *testing.T) {
		o := p3Options(b, "").SetCleanSession(false)
		_, err := p3TryConnect(t, o)
		if !errors.Is(err, packets.ErrorRefusedIDRejected) {
			t.Fatalf("connect error %v, want %v", err, packets.ErrorRefusedIDRejected)
		}
	})

	t.Run("empty id with clean session is accepted", func(t *testing.T) {
		// [MQTT-3.1.3-6] the server may accept it and assign a unique id.
		c1 := p3Connect(t, p3Options(b, ""))
		c2 := p3Connect(t, p3Options(b, ""))
		c1.sub(t, "cid/1", 1)
		c2.sub(t, "cid/2", 1)
		p3Alive(t, c1, "cid/1")
		p3Alive(t, c2, "cid/2") // two empty ids did not take each other over
		if !c1.IsConnectionOpen() {
			t.Fatal("first client with an empty id was disconnected by the second")
		}
	})

	t.Run("MQTT 3.1 empty id is rejected 0x02", func(t *testing.T) {
		// MQTT 3.1 section 3.1: the client id must be 1 to 23 characters;
		// CONNACK 0x02 "Connection Refused: identifier rejected".
		r := p3Dial(t, b.addr, protocol.Version31)
		r.write(p3Frame(0x10, p3Cat(p3Str("MQIsdp"), []byte{3, 0x02, 0, 30}, p3Str(""))...))
		got := r.closed(p3Wait, "after refused 3.1 CONNECT")
		if len(got) != 1 || got[0].Type() != protocol.TypeConnack {
			t.Fatalf("got %v, want exactly one CONNACK", got)
		}
		if rc := got[0].(*protocol.Connack).Reason; rc != protocol.ReasonClientIdentifierNotValid {
			t.Fatalf("CONNACK return code %v, want 0x02 identifier rejected", rc)
		}
		o := p3Options(b, "").SetProtocolVersion(3)
		if _, err := p3TryConnect(t, o); !errors.Is(err, packets.ErrorRefusedIDRejected) {
			t.Fatalf("paho 3.1 connect error %v, want %v", err, packets.ErrorRefusedIDRejected)
		}
	})

	t.Run("unsupported protocol level is refused 0x01", func(t *testing.T) {
		// [MQTT-3.1.2-2] CONNACK 0x01 (unacceptable protocol level), then
		// close. Level 2 is older than any we speak: the 3.1.1 form. (A level
		// above 5 gets the v5 form, CONNACK 0x84, as 5.0's [MQTT-3.1.2-2]
		// allows: see TestBadInput "protocol level 6".)
		r := p3Dial(t, b.addr, protocol.Version311)
		r.write(p3Frame(0x10, p3Cat(p3Str("MQTT"), []byte{2, 0x02, 0, 30}, p3Str("lvl2"))...))
		got := r.closed(p3Wait, "after CONNECT level 2")
		if len(got) != 1 || got[0].Type() != protocol.TypeConnack {
			t.Fatalf("got %v, want exactly one CONNACK", got)
		}
		if rc := got[0].(*protocol.Connack).Reason; rc != protocol.ReasonUnsupportedProtocolVersion {
			t.Fatalf("CONNACK return code %v, want 0x01", rc)
		}
	})

	t.Run("accepted CONNACK bytes", func(t *testing.T) {
		// [MQTT-3.1.4-4] zero return code; [MQTT-3.2.2-1] session present 0 for a clean session.
		r := p3Dial(t, b.addr, protocol.Version311)
		r.write(p3Frame(0x10, p3Cat(p3Str("MQTT"), []byte{4, 0x02, 0, 30}, p3Str("bytes"))...))
		ack := r.expect(protocol.TypeConnack, "CONNACK").(*protocol.Connack)
		if ack.Reason != protocol.ReasonSuccess || ack.SessionPresent {
			t.Fatalf("CONNACK %+v, want 0x00 and session present 0", ack)
		}
		r.send(&protocol.Pingreq{})
		r.expect(protocol.TypePingresp, "PINGRESP") // [MQTT-3.12.4-1]
	})

	t.Run("MQTT 3.1 client publishes and subscribes", func(t *testing.T) {
		c := p3Connect(t, p3Options(b, "p3-mqtt31").SetProtocolVersion(3))
		if g := c.sub(t, "v31/#", 2); g != 2 {
			t.Fatalf("granted %d, want 2", g)
		}
		for q := byte(0); q <= 2; q++ {
			c.pub(t, "v31/t", q, false, fmt.Sprint("q", q))
			m := c.in.next(t, p3Wait, "3.1 message")
			if m.Payload != fmt.Sprint("q", q) || m.QoS != q {
				t.Fatalf("3.1 client got %v, want q%d at qos %d", m, q, q)
			}
		}
	})
}

// TestV311PubSubQoS publishes at every QoS to subscriptions of every QoS,
// in both directions between two clients: each message arrives once, at
// the minimum of the published and the granted QoS [MQTT-3.8.4-6], with
// DUP 0 [MQTT-3.3.1-3], and a QoS 1/2 publish completes its handshake
// [MQTT-4.3.2-2] [MQTT-4.3.3-2].
func TestV311PubSubQoS(t *testing.T) {
	b := startBroker(t, "")
	a := p3Connect(t, p3Options(b, "p3-qos-a"))
	c := p3Connect(t, p3Options(b, "p3-qos-b"))
	for _, pair := range []struct {
		name       string
		from, to   *p3Client
		fromTopics string
	}{{"a to b", a, c, "qos/b"}, {"b to a", c, a, "qos/a"}} {
		for sq := byte(0); sq <= 2; sq++ {
			if g := pair.to.sub(t, fmt.Sprintf("%s/s%d", pair.fromTopics, sq), sq); g != sq {
				t.Fatalf("%s: granted %d, want %d", pair.name, g, sq)
			}
		}
	}
	for _, pair := range []struct {
		name     string
		from, to *p3Client
		prefix   string
	}{{"a to b", a, c, "qos/b"}, {"b to a", c, a, "qos/a"}} {
		t.Run(pair.name, func(t *testing.T) {
			for pq := byte(0); pq <= 2; pq++ {
				for sq := byte(0); sq <= 2; sq++ {
					topic := fmt.Sprintf("%s/s%d", pair.prefix, sq)
					payload := fmt.Sprintf("p%d-s%d", pq, sq)
					pair.from.pub(t, topic, pq, false, payload)
					m := pair.to.in.next(t, p3Wait, payload)
					want := min(pq, sq)
					if m.Topic != topic || m.Payload != payload || m.QoS != want || m.Dup || m.Retained {
						t.Errorf("published qos %d to a qos %d subscription: got %v, want qos %d dup=false retain=false",
							pq, sq, m, want)
					}
				}
			}
			pair.to.in.none(t, p3Quiet, "after the 9 expected messages")
		})
	}
}

// TestV311OverlappingSubscriptions: one client with three matching
// filters at QoS 0, 1 and 2 receives one copy per message, at the highest
// granted QoS that the publish allows [MQTT-3.3.5-1] (the broker's design:
// one delivery per session).
func TestV311OverlappingSubscriptions(t *testing.T) {
	b := startBroker(t, "")
	s := p3Connect(t, p3Options(b, "p3-overlap"))
	s.sub(t, "ov/#", 0)
	s.sub(t, "ov/+/x", 2)
	s.sub(t, "ov/a/+", 1)
	p := p3Connect(t, p3Options(b, "p3-overlap-pub"))
	for _, pq := range []byte{2, 1, 0} {
		payload := fmt.Sprint("pq", pq)
		p.pub(t, "ov/a/x", pq, false, payload)
		m := s.in.next(t, p3Wait, payload)
		if m.Payload != payload || m.QoS != pq {
			t.Fatalf("got %v, want %s at qos %d (max granted 2, capped by the publish)", m, payload, pq)
		}
	}
	// A message matching only "ov/#" marks the end: nothing else may
	// arrive before it.
	p.pub(t, "ov/end", 1, false, "end")
	if m := s.in.next(t, p3Wait, "end marker"); m.Payload != "end" || m.QoS != 0 {
		t.Fatalf("got %v, want the end marker at qos 0 (duplicate delivery of an overlapping match?)", m)
	}
	// One filter at QoS 1 and one at QoS 0 matching: QoS 1.
	p.pub(t, "ov/a/y", 2, false, "two-filters")
	if m := s.in.next(t, p3Wait, "ov/a/y"); m.QoS != 1 || m.Payload != "two-filters" {
		t.Fatalf("got %v, want qos 1 (max of the matching 0 and 1)", m)
	}
	s.in.none(t, p3Quiet, "after the last single copy")
}

// TestV311Retained covers the retained message rules of 3.3.1.3.
func TestV311Retained(t *testing.T) {
	b := startBroker(t, "")
	p := p3Connect(t, p3Options(b, "p3-ret-pub"))
	est := p3Connect(t, p3Options(b, "p3-ret-established"))
	est.sub(t, "rt/#", 2)

	// A fresh subscriber's first messages: the retained ones, then a
	// non-retained marker published afterwards.
	fresh := func(t *testing.T, id, filter string, qos byte) []p3Msg {
		t.Helper()
		n := p3Connect(t, p3Options(b, id))
		n.sub(t, filter, qos)
		n.sub(t, "rt/zz-marker", 1)
		p.pub(t, "rt/zz-marker", 1, false, "marker-"+id)
		if m := est.in.next(t, p3Wait, "marker at the established subscriber"); m.Topic != "rt/zz-marker" {
			t.Fatalf("established subscriber: unexpected %v", m)
		}
		var got []p3Msg
		for {
			m := n.in.next(t, p3Wait, "retained messages then the marker")
			if m.Topic == "rt/zz-marker" {
				if m.Payload != "marker-"+id || m.Retained {
					t.Fatalf("marker %v", m)
				}
				return got
			}
			got = append(got, m)
		}
	}
	// [MQTT-3.3.1-5] stored; [MQTT-3.3.1-9] an established subscription gets RETAIN 0.
	p.pub(t, "rt/a", 1, true, "v1")
	if m := est.in.next(t, p3Wait, "v1 to the established subscriber"); m.Payload != "v1" || m.Retained || m.QoS != 1 {
		t.Fatalf("established subscriber got %v, want v1 qos 1 retain=false [MQTT-3.3.1-9]", m)
	}
	// [MQTT-3.3.1-6] sent to a new subscription; [MQTT-3.3.1-8] with RETAIN 1;
	// at min(stored QoS 1, granted 2) [MQTT-3.8.4-6].
	got := fresh(t, "p3-ret-n1", "rt/#", 2)
	if len(got) != 1 || got[0].Payload != "v1" || !got[0].Retained || got[0].QoS != 1 || got[0].Topic != "rt/a" {
		t.Fatalf("new subscriber got %v, want only rt/a v1 qos 1 retain=true", got)
	}

	// [MQTT-3.3.1-7] a QoS 0 retained message replaces the stored one.
	p.pub(t, "rt/a", 0, true, "v2")
	if m := est.in.next(t, p3Wait, "v2"); m.Payload != "v2" || m.Retained {
		t.Fatalf("established subscriber got %v, want v2 retain=false", m)
	}
	got = fresh(t, "p3-ret-n2", "rt/+", 1)
	if len(got) != 1 || got[0].Payload != "v2" || !got[0].Retained || got[0].QoS != 0 {
		t.Fatalf("new subscriber got %v, want only v2 qos 0 retain=true", got)
	}

	// [MQTT-3.3.1-12] a non-retained publish neither stores nor replaces.
	p.pub(t, "rt/a", 1, false, "v3-not-retained")
	p.pub(t, "rt/b", 2, false, "b-not-retained")
	est.in.collect(t, 2, p3Wait, "non-retained publishes")
	got = fresh(t, "p3-ret-n3", "rt/#", 2)
	if len(got) != 1 || got[0].Payload != "v2" {
		t.Fatalf("new subscriber got %v, want only the retained v2", got)
	}

	// A retained message on a second topic, and an exact filter.
	p.pub(t, "rt/b", 2, true, "b1")
	est.in.next(t, p3Wait, "b1")
	got = fresh(t, "p3-ret-n4", "rt/b", 2)
	if len(got) != 1 || got[0].Payload != "b1" || got[0].QoS != 2 || !got[0].Retained {
		t.Fatalf("new subscriber of rt/b got %v, want b1 qos 2 retain=true", got)
	}

	// [MQTT-3.3.1-10] an empty retained payload is delivered as normal
	// and removes the retained message; [MQTT-3.3.1-11] it is not stored.
	p.pub(t, "rt/a", 1, true, "")
	if m := est.in.next(t, p3Wait, "empty retained"); m.Topic != "rt/a" || m.Payload != "" || m.Retained {
		t.Fatalf("established subscriber got %v, want the empty message on rt/a with retain=false", m)
	}
	got = fresh(t, "p3-ret-n5", "rt/#", 2)
	if len(got) != 1 || got[0].Topic != "rt/b" || got[0].Payload != "b1" {
		t.Fatalf("new subscriber got %v, want only rt/b b1 (rt/a cleared)", got)
	}

	// Re-subscribing to an existing filter re-sends the retained messages
	// [MQTT-3.8.4-3].
	n := p3Connect(t, p3Options(b, "p3-ret-resub"))
	n.sub(t, "rt/b", 1)
	if m := n.in.next(t, p3Wait, "first retained b1"); m.Payload != "b1" || !m.Retained {
		t.Fatalf("got %v", m)
	}
	n.sub(t, "rt/b", 1)
	if m := n.in.next(t, p3Wait, "retained b1 again after re-subscribe"); m.Payload != "b1" || !m.Retained {
		t.Fatalf("got %v", m)
	}
}

// TestV311SysTopicsNotMatchedByWildcards: the broker publishes $SYS topics,
// and filters starting with a wildcard never match them [MQTT-4.7.2-1].
func TestV311SysTopicsNotMatchedByWildcards(t *testing.T) {
	b := startBroker(t, "[sys]\ninterval = \"1s\"\n")
	all := p3Connect(t, p3Options(b, "p3-sys-all"))
	all.sub(t, "#", 0)
	all.sub(t, "+/broker/#", 0)
	all.sub(t, "+/broker/version", 0)
	sys := p3Connect(t, p3Options(b, "p3-sys"))
	sys.sub(t, "$SYS/#", 0)
	m := sys.in.next(t, 3*time.Second, "a $SYS message for a $SYS/# subscription")
	if !strings.HasPrefix(m.Topic, "$SYS/") {
		t.Fatalf("$SYS/# subscription got %v", m)
	}
	// Let at least one more $SYS interval pass (1s), then a marker.
	time.Sleep(1200 * time.Millisecond)
	pub := p3Connect(t, p3Options(b, "p3-sys-pub"))
	pub.pub(t, "sys/marker", 1, false, "marker")
	if m := all.in.next(t, p3Wait, "marker"); m.Topic != "sys/marker" {
		t.Fatalf("a wildcard filter matched %v [MQTT-4.7.2-1]", m)
	}
}

// TestV311PersistentSession: with clean session 0 the session, its
// subscriptions and the QoS 1/2 messages that arrive while the client is
// away survive; they arrive on reconnect, in order [MQTT-3.1.2-4]
// [MQTT-3.1.2-5] [MQTT-4.6.0-6], with Session Present set [MQTT-3.2.2-2].
func TestV311PersistentSession(t *testing.T) {
	b := startBroker(t, "")
	opts := func() *mqtt.ClientOptions { return p3Options(b, "p3-persist").SetCleanSession(false) }
	c := p3Connect(t, opts())
	if c.present {
		t.Fatal("first connect: Session Present 1, want 0 [MQTT-3.2.2-3]")
	}
	c.sub(t, "ps/q1", 1)
	c.sub(t, "ps/q2", 2)
	c.Disconnect(50)

	p := p3Connect(t, p3Options(b, "p3-persist-pub"))
	const n = 20
	for i := range n {
		q := byte(1 + i%2)
		p.pub(t, fmt.Sprintf("ps/q%d", q), q, false, fmt.Sprint(i))
	}
	c = p3Connect(t, opts())
	if !c.present {
		t.Fatal("reconnect: Session Present 0, want 1 [MQTT-3.2.2-2]")
	}
	got := c.in.collect(t, n, p3Wait, "messages queued while offline")
	next := map[byte]int{1: 0, 2: 1}
	for _, m := range got {
		want := fmt.Sprint(next[m.QoS])
		if m.Topic != fmt.Sprintf("ps/q%d", m.QoS) || m.Payload != want {
			t.Fatalf("queued messages out of order or at the wrong QoS: got %v, want %s next at qos %d; all: %v",
				m, want, m.QoS, got)
		}
		next[m.QoS] += 2
	}
	// The subscriptions survived: no SUBSCRIBE on this connection.
	p.pub(t, "ps/q1", 1, false, "live")
	if m := c.in.next(t, p3Wait, "live message"); m.Payload != "live" || m.QoS != 1 {
		t.Fatalf("got %v", m)
	}
	c.in.none(t, p3Quiet, "after the queued and live messages")
	c.Disconnect(50)

	// Clean session 1 discards the session [MQTT-3.1.2-6]: Session Present
	// 0 [MQTT-3.2.2-1] and no subscriptions.
	c = p3Connect(t, p3Options(b, "p3-persist"))
	if c.present {
		t.Fatal("clean session: Session Present 1, want 0 [MQTT-3.2.2-1]")
	}
	c.sub(t, "ps/marker", 1)
	p.pub(t, "ps/q1", 1, false, "after clean")
	p.pub(t, "ps/marker", 1, false, "marker")
	if m := c.in.next(t, p3Wait, "marker"); m.Topic != "ps/marker" {
		t.Fatalf("got %v: a subscription of the discarded session survived", m)
	}
	c.Disconnect(50)
	// The clean session ended with its connection: a new persistent
	// connection finds no session.
	c = p3Connect(t, opts())
	if c.present {
		t.Fatal("Session Present 1 after a clean session ended, want 0 [MQTT-3.1.2-6]")
	}
}

// TestV311SessionPresentEmptySession: a session exists once a clean
// session 0 client connected, even with no subscription or message: 3.1.1
// section 3.1.2.4 lists "the existence of a Session, even if the rest of the
// Session state is empty" as session state, so the reconnect must see
// Session Present 1 [MQTT-3.2.2-2].
func TestV311SessionPresentEmptySession(t *testing.T) {
	b := startBroker(t, "")
	opts := p3Options(b, "p3-empty-session").SetCleanSession(false)
	c := p3Connect(t, opts)
	if c.present {
		t.Fatal("first connect: Session Present 1, want 0")
	}
	c.Disconnect(50)
	c = p3Connect(t, p3Options(b, "p3-empty-session").SetCleanSession(false))
	if !c.present {
		t.Fatal("reconnect to an existing (empty) session: Session Present 0, want 1 [MQTT-3.2.2-2]")
	}
}

// TestV311Takeover: a second connection with the same client id closes the
// first [MQTT-3.1.4-2]; a 3.1.1 server has no DISCONNECT to send, so the
// first sees its socket closed; a persistent session passes to the new
// connection.
func TestV311Takeover(t *testing.T) {
	b := startBroker(t, "")
	t.Run("clean", func(t *testing.T) {
		old := p3RawConnect(t, b, "p3-take", nil)
		lost := make(chan error, 1)
		o := p3Options(b, "p3-take").SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
		c := p3Connect(t, o)
		if got := old.closed(p3Wait, "first connection after takeover"); len(got) != 0 {
			t.Fatalf("first connection received %v before the close, want nothing (3.1.1 has no server DISCONNECT)", got)
		}
		c.sub(t, "take/x", 1)
		p3Alive(t, c, "take/x")
		select {
		case err := <-lost:
			t.Fatalf("the new connection was lost: %v", err)
		default:
		}
	})
	t.Run("persistent", func(t *testing.T) {
		lost := make(chan error, 1)
		o := p3Options(b, "p3-take-p").SetCleanSession(false).
			SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
		a := p3Connect(t, o)
		a.sub(t, "take/p", 1)
		c := p3Connect(t, p3Options(b, "p3-take-p").SetCleanSession(false))
		if !c.present {
			t.Error("takeover of a live persistent session: Session Present 0, want 1")
		}
		select {
		case <-lost:
		case <-time.After(p3Wait):
			t.Fatal("first client still connected after takeover [MQTT-3.1.4-2]")
		}
		pub := p3Connect(t, p3Options(b, "p3-take-pub"))
		pub.pub(t, "take/p", 1, false, "inherited")
		if m := c.in.next(t, p3Wait, "message on the inherited subscription"); m.Payload != "inherited" {
			t.Fatalf("got %v", m)
		}
		a.in.none(t, p3Quiet, "old connection")
	})
}

// TestV311Will: the will is published when the connection closes without
// DISCONNECT [MQTT-3.1.2-8], as retained if asked [MQTT-3.1.2-17], and
// never after a DISCONNECT [MQTT-3.14.4-3] [MQTT-3.1.2-10].
func TestV311Will(t *testing.T) {
	b := startBroker(t, "")
	s := p3Connect(t, p3Options(b, "p3-will-watch"))
	s.sub(t, "will/#", 2)
	will := func(topic, payload string, qos byte, retain bool) func(*protocol.Connect) {
		return func(c *protocol.Connect) {
			c.WillFlag = true
			c.Will = protocol.Will{Topic: []byte(topic), Payload: []byte(payload), QoS: qos, Retain: retain}
		}
	}

	t.Run("abnormal close", func(t *testing.T) {
		r := p3RawConnect(t, b, "p3-will-1", will("will/w1", "gone", 1, false))
		r.nc.Close()
		m := s.in.next(t, p3Wait, "will after an abnormal close")
		if m.Topic != "will/w1" || m.Payload != "gone" || m.QoS != 1 || m.Retained {
			t.Fatalf("got %v, want will/w1 \"gone\" qos 1 retain=false [MQTT-3.1.2-16]", m)
		}
	})

	t.Run("retained will", func(t *testing.T) {
		r := p3RawConnect(t, b, "p3-will-2", will("will/w2", "retained-gone", 2, true))
		r.nc.Close()
		if m := s.in.next(t, p3Wait, "retained will"); m.Topic != "will/w2" || m.Retained {
			t.Fatalf("established subscriber got %v, want will/w2 retain=false", m)
		}
		n := p3Connect(t, p3Options(b, "p3-will-late"))
		n.sub(t, "will/w2", 2)
		if m := n.in.next(t, p3Wait, "stored will"); m.Payload != "retained-gone" || !m.Retained || m.QoS != 2 {
			t.Fatalf("late subscriber got %v, want the will retained at qos 2 [MQTT-3.1.2-17]", m)
		}
	})

	t.Run("no will after DISCONNECT", func(t *testing.T) {
		r := p3RawConnect(t, b, "p3-will-3", will("will/w3", "must-not-appear", 1, false))
		r.send(&protocol.Disconnect{})
		r.closed(p3Wait, "after DISCONNECT")
		o := p3Options(b, "p3-will-4").SetWill("will/w4", "must-not-appear-either", 1, false)
		c := p3Connect(t, o)
		c.Disconnect(50)
		time.Sleep(p3Quiet)
		pub := p3Connect(t, p3Options(b, "p3-will-pub"))
		pub.pub(t, "will/marker", 1, false, "marker")
		if m := s.in.next(t, p3Wait, "marker"); m.Topic != "will/marker" {
			t.Fatalf("got %v: a will was published after DISCONNECT [MQTT-3.14.4-3]", m)
		}
	})
}

// TestV311KeepaliveTimeout: a client silent for one and a half times its
// keepalive is disconnected "as if the network had failed"
// [MQTT-3.1.2-24], so its will is published; a client that pings in time
// stays connected [MQTT-3.12.4-1].
func TestV311KeepaliveTimeout(t *testing.T) {
	b := startBroker(t, "")
	s := p3Connect(t, p3Options(b, "p3-ka-watch"))
	s.sub(t, "ka/#", 1)

	// The pinger's keepalive is 2s (closed after 3s of silence) and it
	// pings every 400ms: a loaded machine does not make it miss.
	pinger := p3RawConnect(t, b, "p3-ka-pinger", func(c *protocol.Connect) { c.KeepAlive = 2 })
	stopPing := make(chan struct{})
	pingDone := make(chan int)
	go func() {
		n := 0
		tick := time.NewTicker(400 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopPing:
				pingDone <- n
				return
			case <-tick.C:
				b, _ := (&protocol.Pingreq{}).Append(nil, protocol.Version311)
				pinger.nc.SetWriteDeadline(time.Now().Add(p3Wait))
				if _, err := pinger.nc.Write(b); err == nil {
					n++
				}
			}
		}
	}()

	// Measured from before the CONNECT: never shorter than the broker's
	// own interval since it read the CONNECT.
	start := time.Now()
	silent := p3RawConnect(t, b, "p3-ka-silent", func(c *protocol.Connect) {
		c.KeepAlive = 1
		c.WillFlag = true
		c.Will = protocol.Will{Topic: []byte("ka/will"), Payload: []byte("timed out"), QoS: 1}
	})
	if got := silent.closed(1500*time.Millisecond+4*time.Second, "silent client with keepalive 1s"); len(got) != 0 {
		t.Fatalf("silent client received %v before the close", got)
	}
	if el := time.Since(start); el < 1500*time.Millisecond {
		t.Errorf("closed %v after CONNECT: earlier than one and a half times the keepalive (1.5s) [MQTT-3.1.2-24]", el)
	}
	if m := s.in.next(t, p3Wait, "will of the timed-out client"); m.Topic != "ka/will" || m.Payload != "timed out" {
		t.Fatalf("got %v", m)
	}
	if d := time.Since(start); d < 3500*time.Millisecond {
		time.Sleep(3500*time.Millisecond - d) // past the pinger's own 3s limit
	}
	close(stopPing)
	sent := <-pingDone
	if sent < 4 {
		t.Fatalf("pinger sent only %d PINGREQs", sent)
	}
	for i := range sent {
		if p := pinger.next(p3Wait, fmt.Sprintf("PINGRESP %d of %d", i+1, sent)); p.Type() != protocol.TypePingresp {
			t.Fatalf("pinger got %s, want PINGRESP", p.Type())
		}
	}
}

// TestV311BadInputClosesConnection: a 3.1.1 server answers a protocol
// violation by closing the connection [MQTT-4.8.0-1], without any packet
// (3.1.1 has no server DISCONNECT); the will is then published (3.1.2.5:
// "the Server closes the Network Connection because of a protocol error")
// [MQTT-3.1.2-8]; and an unrelated client is unaffected.
func TestV311BadInputClosesConnection(t *testing.T) {
	b := startBroker(t, "")
	watch := p3Connect(t, p3Options(b, "p3-bad-watch"))
	watch.sub(t, "bad/#", 1)
	watch.sub(t, "bad-alive/watch", 1)

	connect311 := p3Frame(0x10, p3Cat(p3Str("MQTT"), []byte{4, 0x02, 0, 30}, p3Str("p3-bad-second"))...)
	cases := []struct {
		name string
		tag  string
		pkt  []byte
		will bool // the will must be published
	}{
		{"subscribe reserved bits in requested qos", "[MQTT-3-8.3-4]",
			p3Frame(0x82, p3Cat([]byte{0, 1}, p3Str("a/b"), []byte{0x04})...), true},
		{"subscribe requested qos 3", "[MQTT-3-8.3-4]",
			p3Frame(0x82, p3Cat([]byte{0, 1}, p3Str("a/b"), []byte{0x03})...), true},
		{"subscribe bad fixed header flags", "[MQTT-2.2.2-2]",
			p3Frame(0x80, p3Cat([]byte{0, 1}, p3Str("a/b"), []byte{0x01})...), true},
		{"subscribe without filters", "[MQTT-3.8.3-3]", p3Frame(0x82, 0, 1), true},
		{"unsubscribe without filters", "[MQTT-3.10.3-2]", p3Frame(0xA2, 0, 1), true},
		{"publish wildcard + in topic", "[MQTT-3.3.2-2]", p3Frame(0x30, p3Cat(p3Str("a/+"), []byte("x"))...), true},
		{"publish wildcard # in topic qos 1", "[MQTT-3.3.2-2]",
			p3Frame(0x32, p3Cat(p3Str("a/#"), []byte{0, 7}, []byte("x"))...), true},
		{"publish qos 3", "[MQTT-3.3.1-4]", p3Frame(0x36, p3Cat(p3Str("a/b"), []byte{0, 7}, []byte("x"))...), true},
		{"publish qos 1 packet id 0", "[MQTT-2.3.1-1]",
			p3Frame(0x32, p3Cat(p3Str("a/b"), []byte{0, 0}, []byte("x"))...), true},
		{"publish ill-formed utf-8 topic", "[MQTT-1.4.0-1]",
			p3Frame(0x30, p3Cat([]byte{0, 2, 0xC3, 0x28}, []byte("x"))...), true},
		{"publish topic with U+0000", "[MQTT-1.4.0-2]",
			p3Frame(0x30, p3Cat([]byte{0, 3, 'a', 0, 'b'}, []byte("x"))...), true},
		{"second CONNECT", "[MQTT-3.1.0-2]", connect311, true},
		{"reserved packet type 15", "[MQTT-2.2.2-2]", p3Frame(0xF0), true},
		{"reserved packet type 0", "[MQTT-2.2.2-2]", p3Frame(0x00), true},
		{"CONNACK from a client", "[MQTT-4.8.0-1]", p3Frame(0x20, 0, 0), true},
		{"SUBACK from a client", "[MQTT-4.8.0-1]", p3Frame(0x90, 0, 1, 0), true},
		{"pingreq with flags", "[MQTT-2.2.2-2]", p3Frame(0xC1), true},
		// A DISCONNECT with reserved flags is no DISCONNECT: whether the
		// will goes out is not asserted.
		{"disconnect with flags", "[MQTT-3.14.1-1]", p3Frame(0xE2), false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			willTopic := fmt.Sprintf("bad/%d", i)
			r := p3RawConnect(t, b, fmt.Sprintf("p3-bad-%d", i), func(c *protocol.Connect) {
				c.WillFlag = true
				c.Will = protocol.Will{Topic: []byte(willTopic), Payload: []byte(tc.name), QoS: 1}
			})
			r.write(tc.pkt)
			if got := r.closed(p3Wait, tc.tag+" "+tc.name); len(got) != 0 {
				t.Fatalf("%s: broker sent %v before closing, want a bare close %s", tc.name, got, tc.tag)
			}
			if tc.will {
				if m := watch.in.next(t, p3Wait, "will of the closed client"); m.Topic != willTopic {
					t.Fatalf("watcher got %v, want the will on %s", m, willTopic)
				}
			}
			p3Alive(t, watch, "bad-alive/watch")
			// Whatever else arrived (a will not asserted) is drained.
			for len(watch.in.ch) > 0 {
				<-watch.in.ch
			}
		})
	}

	preConnect := []struct {
		name, tag string
		pkt       []byte
	}{
		{"first packet is not CONNECT", "[MQTT-3.1.0-1]", p3Frame(0xC0)},
		{"CONNECT reserved flag set", "[MQTT-3.1.2-3]",
			p3Frame(0x10, p3Cat(p3Str("MQTT"), []byte{4, 0x03, 0, 30}, p3Str("rsv"))...)},
		{"CONNECT will qos without will flag", "[MQTT-3.1.2-13]",
			p3Frame(0x10, p3Cat(p3Str("MQTT"), []byte{4, 0x0A, 0, 30}, p3Str("wq"))...)},
		{"CONNECT will qos 3", "[MQTT-3.1.2-14]",
			p3Frame(0x10, p3Cat(p3Str("MQTT"), []byte{4, 0x1E, 0, 30}, p3Str("w3"), p3Str("w/t"), p3Str("x"))...)},
		{"CONNECT password without user name", "[MQTT-3.1.2-22]",
			p3Frame(0x10, p3Cat(p3Str("MQTT"), []byte{4, 0x42, 0, 30}, p3Str("pw"), p3Str("secret"))...)},
		{"CONNECT will retain without will flag", "[MQTT-3.1.2-15]",
			p3Frame(0x10, p3Cat(p3Str("MQTT"), []byte{4, 0x22, 0, 30}, p3Str("wr"))...)},
	}
	for _, tc := range preConnect {
		t.Run(tc.name, func(t *testing.T) {
			// [MQTT-3.1.4-1] close without CONNACK.
			r := p3Dial(t, b.addr, protocol.Version311)
			r.write(tc.pkt)
			if got := r.closed(p3Wait, tc.tag+" "+tc.name); len(got) != 0 {
				t.Fatalf("%s: broker sent %v, want a close without CONNACK %s [MQTT-3.1.4-1]", tc.name, got, tc.tag)
			}
			p3Alive(t, watch, "bad-alive/watch")
		})
	}
}

// TestV311SubackFailure: an invalid filter gets the failure code 0x80
// in its place of the SUBACK [MQTT-3.8.4-5] [MQTT-3.9.3-1] [MQTT-3.9.3-2],
// the valid ones are granted, and the connection stays usable.
func TestV311SubackFailure(t *testing.T) {
	b := startBroker(t, "")
	r := p3RawConnect(t, b, "p3-suback", nil)
	r.send(&protocol.Subscribe{PacketID: 9, Filters: []protocol.Subscription{
		{Filter: []byte("sf/ok"), QoS: 1},
		{Filter: []byte("a/#/b"), QoS: 1}, // [MQTT-4.7.1-2] '#' must be last
		{Filter: []byte("sf/a+"), QoS: 0}, // [MQTT-4.7.1-3] '+' must occupy a whole level
		{Filter: []byte("sf/#"), QoS: 2},
	}})
	sa := r.expect(protocol.TypeSuback, "SUBACK").(*protocol.Suback)
	want := []protocol.ReasonCode{1, 0x80, 0x80, 2}
	if sa.PacketID != 9 || fmt.Sprint(sa.Reasons) != fmt.Sprint(want) {
		t.Fatalf("SUBACK id %d codes %v, want id 9 codes %v", sa.PacketID, sa.Reasons, want)
	}
	p := p3Connect(t, p3Options(b, "p3-suback-pub"))
	p.pub(t, "sf/ok", 1, false, "ok")
	pk := r.expect(protocol.TypePublish, "PUBLISH on the granted filters").(*protocol.Publish)
	if string(pk.Topic) != "sf/ok" || string(pk.Payload) != "ok" || pk.QoS != 1 {
		t.Fatalf("got %+v, want sf/ok at qos 1 (one copy at the max granted QoS)", pk)
	}
	r.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: pk.PacketID})
	r.send(&protocol.Pingreq{})
	r.expect(protocol.TypePingresp, "PINGRESP: the connection is still usable")
}

// TestV311RedeliveryOnReconnect: when a client reconnects with clean
// session 0 the server re-sends every unacknowledged PUBLISH with its
// original packet identifier and DUP 1, and every unacknowledged PUBREL
// [MQTT-4.4.0-1] [MQTT-3.3.1-1], in the original order [MQTT-4.6.0-1];
// acknowledged messages are not sent again.
func TestV311RedeliveryOnReconnect(t *testing.T) {
	b := startBroker(t, "")
	persist := func(c *protocol.Connect) { c.CleanStart = false }
	sub := p3RawConnect(t, b, "p3-redeliver", persist)
	sub.send(&protocol.Subscribe{PacketID: 1, Filters: []protocol.Subscription{
		{Filter: []byte("rd/1"), QoS: 1}, {Filter: []byte("rd/2"), QoS: 2}}})
	sub.expect(protocol.TypeSuback, "SUBACK")

	p := p3Connect(t, p3Options(b, "p3-redeliver-pub"))
	p.pub(t, "rd/1", 1, false, "a")
	p.pub(t, "rd/2", 2, false, "b")
	p.pub(t, "rd/1", 1, false, "c")
	p.pub(t, "rd/1", 1, false, "d")
	recv := map[string]*protocol.Publish{}
	for range 4 {
		pk := sub.expect(protocol.TypePublish, "PUBLISH").(*protocol.Publish)
		if pk.Dup {
			t.Fatalf("first delivery with DUP 1: %+v [MQTT-3.3.1-3]", pk)
		}
		recv[string(pk.Payload)] = pk
	}
	// a: unacknowledged; b: PUBREC sent, PUBREL received, no PUBCOMP;
	// c: acknowledged; d: unacknowledged.
	sub.send(&protocol.Ack{Kind: protocol.TypePubrec, PacketID: recv["b"].PacketID})
	if rel := sub.expect(protocol.TypePubrel, "PUBREL").(*protocol.Ack); rel.PacketID != recv["b"].PacketID {
		t.Fatalf("PUBREL for %d, want %d", rel.PacketID, recv["b"].PacketID)
	}
	sub.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: recv["c"].PacketID})
	sub.send(&protocol.Pingreq{})
	sub.expect(protocol.TypePingresp, "PINGRESP") // the PUBACK has been read
	time.Sleep(p3Quiet)                           // and, surely, handled
	sub.nc.Close()

	sub = p3Dial(t, b.addr, protocol.Version311)
	ack := sub.connect(&protocol.Connect{Level: protocol.Version311, KeepAlive: 30, ClientID: []byte("p3-redeliver")})
	if !ack.SessionPresent {
		t.Fatal("reconnect: Session Present 0, want 1 [MQTT-3.2.2-2]")
	}
	var got []string
	for range 3 {
		switch pk := sub.next(p3Wait, "re-sent packet").(type) {
		case *protocol.Publish:
			orig := recv[string(pk.Payload)]
			if orig == nil || !pk.Dup || pk.PacketID != orig.PacketID || pk.QoS != orig.QoS {
				t.Fatalf("re-sent PUBLISH %+v, want DUP 1 with the original id and QoS of %+v [MQTT-4.4.0-1] [MQTT-3.3.1-1]", pk, orig)
			}
			got = append(got, "PUBLISH "+string(pk.Payload))
			sub.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: pk.PacketID})
		case *protocol.Ack:
			if pk.Kind != protocol.TypePubrel || pk.PacketID != recv["b"].PacketID {
				t.Fatalf("re-sent %s %d, want PUBREL %d", pk.Kind, pk.PacketID, recv["b"].PacketID)
			}
			got = append(got, "PUBREL b")
			sub.send(&protocol.Ack{Kind: protocol.TypePubcomp, PacketID: pk.PacketID})
		default:
			t.Fatalf("unexpected %s after reconnect", pk.Type())
		}
	}
	// a was sent before d, so it is re-sent before d [MQTT-4.6.0-1].
	if ia, id := slicesIndex(got, "PUBLISH a"), slicesIndex(got, "PUBLISH d"); ia < 0 || id < 0 || ia > id || slicesIndex(got, "PUBREL b") < 0 {
		t.Fatalf("re-sent %v, want PUBLISH a before PUBLISH d, and PUBREL b", got)
	}
	// Nothing else: c was acknowledged, a, b and d are now complete.
	p.pub(t, "rd/1", 1, false, "end")
	if pk := sub.expect(protocol.TypePublish, "end marker").(*protocol.Publish); string(pk.Payload) != "end" || pk.Dup {
		t.Fatalf("got %+v, want the end marker (something was re-sent twice or an acknowledged message again)", pk)
	}
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestV311InboundQoS2ExactlyOnce: until the PUBREL, a QoS 2 PUBLISH with
// the same packet identifier (a resend after a reconnect, DUP 1) is
// acknowledged with PUBREC again but not delivered again; after the
// PUBCOMP the identifier is new [MQTT-4.3.3-2].
func TestV311InboundQoS2ExactlyOnce(t *testing.T) {
	b := startBroker(t, "")
	w := p3Connect(t, p3Options(b, "p3-eo-watch"))
	w.sub(t, "eo/#", 2)
	persist := func(c *protocol.Connect) { c.CleanStart = false }
	p := p3RawConnect(t, b, "p3-eo-pub", persist)
	pub := &protocol.Publish{Topic: []byte("eo/t"), QoS: 2, PacketID: 7, Payload: []byte("once")}
	p.send(pub)
	if a := p.expect(protocol.TypePubrec, "PUBREC").(*protocol.Ack); a.PacketID != 7 {
		t.Fatalf("PUBREC %d", a.PacketID)
	}
	if m := w.in.next(t, p3Wait, "the QoS 2 message"); m.Payload != "once" {
		t.Fatalf("got %v", m)
	}
	p.nc.Close()

	p = p3Dial(t, b.addr, protocol.Version311)
	if ack := p.connect(&protocol.Connect{Level: protocol.Version311, KeepAlive: 30, ClientID: []byte("p3-eo-pub")}); !ack.SessionPresent {
		t.Fatal("reconnect: Session Present 0, want 1")
	}
	pub.Dup = true
	p.send(pub)
	if a := p.expect(protocol.TypePubrec, "PUBREC for the resend").(*protocol.Ack); a.PacketID != 7 {
		t.Fatalf("PUBREC %d", a.PacketID)
	}
	p.send(&protocol.Ack{Kind: protocol.TypePubrel, PacketID: 7})
	if a := p.expect(protocol.TypePubcomp, "PUBCOMP").(*protocol.Ack); a.PacketID != 7 {
		t.Fatalf("PUBCOMP %d", a.PacketID)
	}
	// After PUBCOMP the same identifier carries a new message.
	p.send(&protocol.Publish{Topic: []byte("eo/t"), QoS: 2, PacketID: 7, Payload: []byte("new")})
	p.expect(protocol.TypePubrec, "PUBREC for the new message")
	if m := w.in.next(t, p3Wait, "next message"); m.Payload != "new" {
		t.Fatalf("got %v, want \"new\": the resent QoS 2 message was delivered twice [MQTT-4.3.3-2]", m)
	}
}

// TestV311Unsubscribe: UNSUBSCRIBE stops delivery for the filters named
// [MQTT-3.10.4-2], byte for byte [MQTT-3.10.4-1], and is answered with
// UNSUBACK even when nothing matched [MQTT-3.10.4-4] [MQTT-3.10.4-5].
func TestV311Unsubscribe(t *testing.T) {
	b := startBroker(t, "")
	r := p3RawConnect(t, b, "p3-unsub", nil)
	r.send(&protocol.Subscribe{PacketID: 1, Filters: []protocol.Subscription{
		{Filter: []byte("us/a"), QoS: 1}, {Filter: []byte("us/+"), QoS: 0}, {Filter: []byte("us/b"), QoS: 1}}})
	r.expect(protocol.TypeSuback, "SUBACK")
	r.send(&protocol.Unsubscribe{PacketID: 2, Filters: [][]byte{[]byte("us/a"), []byte("us/none"), []byte("us/#")}})
	if ua := r.expect(protocol.TypeUnsuback, "UNSUBACK").(*protocol.Unsuback); ua.PacketID != 2 {
		t.Fatalf("UNSUBACK id %d, want 2", ua.PacketID)
	}
	p := p3Connect(t, p3Options(b, "p3-unsub-pub"))
	p.pub(t, "us/a", 1, false, "a") // still matches us/+ (QoS 0)
	p.pub(t, "us/b", 1, false, "b")
	pa := r.expect(protocol.TypePublish, "us/a via us/+").(*protocol.Publish)
	if string(pa.Payload) != "a" || pa.QoS != 0 {
		t.Fatalf("got %+v, want a at qos 0 (us/a unsubscribed, us/+ left)", pa)
	}
	pb := r.expect(protocol.TypePublish, "us/b").(*protocol.Publish)
	if string(pb.Payload) != "b" || pb.QoS != 1 {
		t.Fatalf("got %+v, want b at qos 1", pb)
	}
	r.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: pb.PacketID})
	r.send(&protocol.Unsubscribe{PacketID: 3, Filters: [][]byte{[]byte("us/+"), []byte("us/b")}})
	r.expect(protocol.TypeUnsuback, "UNSUBACK")
	p.pub(t, "us/a", 1, false, "gone")
	r.send(&protocol.Pingreq{})
	if pk := r.next(p3Wait, "PINGRESP, no message"); pk.Type() != protocol.TypePingresp {
		t.Fatalf("got %s after unsubscribing everything, want PINGRESP", pk.Type())
	}
	select {
	case pk := <-r.in:
		t.Fatalf("got %v after unsubscribing everything", pk)
	case <-time.After(p3Quiet):
	}
}

// TestV311PublishThenDisconnect: what a client publishes before its
// DISCONNECT is delivered, like any other message [MQTT-4.5.0-1]; the
// DISCONNECT only ends the connection and discards the will
// [MQTT-3.14.4-3]. mosquitto_pub and most one-shot publishers send
// PUBLISH and DISCONNECT back to back, in one TCP segment.
func TestV311PublishThenDisconnect(t *testing.T) {
	b := startBroker(t, "")
	w := p3Connect(t, p3Options(b, "p3-pd-watch"))
	w.sub(t, "pd/#", 0)
	const rounds, n = 10, 50
	for i := range rounds {
		r := p3Dial(t, b.addr, protocol.Version311)
		var buf []byte
		for _, pk := range []protocol.Packet{
			&protocol.Connect{Level: protocol.Version311, CleanStart: true, KeepAlive: 30, ClientID: []byte(fmt.Sprint("p3-pd-", i)),
				WillFlag: true, Will: protocol.Will{Topic: []byte("pd/will"), Payload: []byte("will")}},
		} {
			buf, _ = pk.Append(buf, protocol.Version311)
		}
		for j := range n {
			buf, _ = (&protocol.Publish{Topic: []byte(fmt.Sprint("pd/", i)), Payload: []byte(fmt.Sprint(j))}).Append(buf, protocol.Version311)
		}
		buf, _ = (&protocol.Disconnect{}).Append(buf, protocol.Version311)
		r.write(buf)
		r.closed(p3Wait, "after DISCONNECT")
	}
	// Messages from different publishers are not ordered with each other,
	// so an end marker from another client proves nothing: collect until
	// every message is in, then wait a quiet period for a will that must not
	// come.
	count := map[string]int{}
	total := 0
	deadline := time.After(p3Wait)
	for total < rounds*n {
		select {
		case m := <-w.in.ch:
			count[m.Topic]++
			if m.Topic != "pd/will" {
				total++
			}
		case <-deadline:
			total = rounds * n // report below
		}
	}
	for quiet := time.After(p3Quiet); ; {
		select {
		case m := <-w.in.ch:
			count[m.Topic]++
			continue
		case <-quiet:
		}
		break
	}
	lost := 0
	for i := range rounds {
		lost += n - count[fmt.Sprint("pd/", i)]
	}
	if lost != 0 || count["pd/will"] != 0 {
		t.Fatalf("of %d messages published before DISCONNECT, %d were lost; %d wills published after DISCONNECT (want 0); per topic %v",
			rounds*n, lost, count["pd/will"], count)
	}
}
