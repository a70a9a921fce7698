package integration

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/nanoactor/nanoactor/protocol"
)

// MQTT 5.0 behaviour seen from real clients: paho.golang where a library
// client shows it, raw packets (rawclient_test.go) where paho hides the
// wire or refuses to send what the test needs.

// v5Client is a paho.golang client on its own socket, collecting the
// messages it receives (paho acknowledges them).
type v5Client struct {
	t    *testing.T
	cli  *paho.Client
	ack  *paho.Connack
	msgs chan *paho.Publish
}

// v5Connect connects a paho client with cp and requires success.
func v5Connect(t *testing.T, b *broker, cp *paho.Connect) *v5Client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", b.addr, rawWait)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c := &v5Client{t: t, msgs: make(chan *paho.Publish, 1024)}
	c.cli = paho.NewClient(paho.ClientConfig{
		ClientID: cp.ClientID,
		Conn:     nc,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			c.msgs <- pr.Packet
			return true, nil
		}},
		OnClientError: func(error) {},
	})
	ctx, cancel := context.WithTimeout(context.Background(), rawWait)
	defer cancel()
	ack, err := c.cli.Connect(ctx, cp)
	if err != nil {
		nc.Close()
		t.Fatalf("paho connect %q: %v", cp.ClientID, err)
	}
	c.ack = ack
	t.Cleanup(func() {
		c.cli.Disconnect(&paho.Disconnect{})
		nc.Close()
	})
	return c
}

// v5Simple connects a paho client with Clean Start and keepalive 30 s.
func v5Simple(t *testing.T, b *broker, id string) *v5Client {
	t.Helper()
	return v5Connect(t, b, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
}

func (c *v5Client) sub(opts ...paho.SubscribeOptions) *paho.Suback {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rawWait)
	defer cancel()
	sa, err := c.cli.Subscribe(ctx, &paho.Subscribe{Subscriptions: opts})
	if err != nil {
		c.t.Fatalf("subscribe %+v: %v", opts, err)
	}
	return sa
}

func (c *v5Client) pub(p *paho.Publish) *paho.PublishResponse {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), rawWait)
	defer cancel()
	r, err := c.cli.Publish(ctx, p)
	if err != nil {
		c.t.Fatalf("publish %s: %v", p.Topic, err)
	}
	return r
}

func (c *v5Client) next() *paho.Publish {
	c.t.Helper()
	select {
	case p := <-c.msgs:
		return p
	case <-time.After(rawWait):
		c.t.Fatalf("no message within %v", rawWait)
	}
	return nil
}

func (c *v5Client) none(d time.Duration) {
	c.t.Helper()
	select {
	case p := <-c.msgs:
		c.t.Fatalf("unexpected message %s %q", p.Topic, p.Payload)
	case <-time.After(d):
	}
}

// TestV5ConnackProperties checks what CONNACK announces with the features
// on: an Assigned Client Identifier for an empty one [MQTT-3.2.2-16]
// [MQTT-3.1.3-6] [MQTT-3.1.3-7], and the configured Receive Maximum,
// Maximum Packet Size and Topic Alias Maximum (3.2.2.3.3, .6, .8); the
// switches that are on are absent (absent means available, 3.2.2.3.4-.5,
// .11-.13) and no Server Keep Alive is sent when the client's value is kept
// [MQTT-3.2.2-22].
func TestV5ConnackProperties(t *testing.T) {
	t.Parallel()
	b := startBroker(t, `
[mqtt]
receive_maximum = 7
max_packet_size = 4096
connect_packet_max = 4096
topic_alias_maximum = 5
`)
	c, ack := rawConnect(t, b, "", nil)
	p := &ack.Props
	if ack.SessionPresent {
		t.Errorf("Session Present 1 for a clean start [MQTT-3.2.2-2]")
	}
	if !p.Has(protocol.PropAssignedClientID) || len(p.AssignedClientID) == 0 {
		t.Fatalf("no Assigned Client Identifier for an empty client id [MQTT-3.2.2-16]")
	}
	if !p.Has(protocol.PropReceiveMaximum) || p.ReceiveMaximum != 7 {
		t.Errorf("Receive Maximum present=%v %d, want 7", p.Has(protocol.PropReceiveMaximum), p.ReceiveMaximum)
	}
	if !p.Has(protocol.PropMaximumPacketSize) || p.MaximumPacketSize != 4096 {
		t.Errorf("Maximum Packet Size present=%v %d, want 4096", p.Has(protocol.PropMaximumPacketSize), p.MaximumPacketSize)
	}
	if !p.Has(protocol.PropTopicAliasMaximum) || p.TopicAliasMaximum != 5 {
		t.Errorf("Topic Alias Maximum present=%v %d, want 5", p.Has(protocol.PropTopicAliasMaximum), p.TopicAliasMaximum)
	}
	for _, id := range []protocol.PropID{protocol.PropMaximumQoS, protocol.PropRetainAvailable,
		protocol.PropWildcardSubAvailable, protocol.PropSubIDAvailable, protocol.PropSharedSubAvailable,
		protocol.PropServerKeepAlive} {
		if p.Has(id) {
			t.Errorf("CONNACK carries property %#x, want it absent (feature available / keepalive kept)", byte(id))
		}
	}
	// The assigned id is a working client id, and a second empty id gets
	// another one (paho.golang, an independent client, reads it too).
	c.subOK("assigned/#", 1)
	other := v5Connect(t, b, &paho.Connect{ClientID: "", CleanStart: true, KeepAlive: 30})
	got := other.ack.Properties.AssignedClientID
	if got == "" || got == string(p.AssignedClientID) {
		t.Fatalf("second Assigned Client Identifier %q, first %q: want a new, different one [MQTT-3.2.2-16]", got, p.AssignedClientID)
	}
	other.pub(&paho.Publish{Topic: "assigned/1", QoS: 1, Payload: []byte("x")})
	if m, _ := c.recv(); string(m.Topic) != "assigned/1" {
		t.Fatalf("got %q", m.Topic)
	}
}

// TestV5ServerKeepAlive checks [mqtt] keepalive_max: a larger (or zero)
// keepalive is lowered and announced as Server Keep Alive [MQTT-3.2.2-21],
// a smaller one is kept and not announced [MQTT-3.2.2-22], and the broker
// enforces the value it announced: silence for 1.5 times it closes the
// connection [MQTT-3.1.2-22].
func TestV5ServerKeepAlive(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "[mqtt]\nkeepalive_max = 10\n")
	for _, tc := range []struct {
		ask     uint16
		present bool
		want    uint16
	}{{60, true, 10}, {0, true, 10}, {5, false, 0}, {10, false, 0}} {
		_, ack := rawConnect(t, b, fmt.Sprintf("ka%d", tc.ask), func(cp *protocol.Connect) { cp.KeepAlive = tc.ask })
		has := ack.Props.Has(protocol.PropServerKeepAlive)
		if has != tc.present || has && ack.Props.ServerKeepAlive != tc.want {
			t.Errorf("keepalive %d: Server Keep Alive present=%v value %d, want present=%v value %d",
				tc.ask, has, ack.Props.ServerKeepAlive, tc.present, tc.want)
		}
	}

	b1 := startBroker(t, "[mqtt]\nkeepalive_max = 1\n")
	c, ack := rawConnect(t, b1, "silent", func(cp *protocol.Connect) { cp.KeepAlive = 60 })
	if ack.Props.ServerKeepAlive != 1 {
		t.Fatalf("Server Keep Alive %d, want 1", ack.Props.ServerKeepAlive)
	}
	start := time.Now()
	rawClosedMaybeDisconnect(t, c, protocol.ReasonKeepAliveTimeout)
	if el := time.Since(start); el < time.Second {
		t.Fatalf("closed after %v, before the 1 s keepalive passed", el)
	}
}

// rawClosedMaybeDisconnect waits for the connection to close, allowing one
// DISCONNECT with reason rc first (for a keepalive timeout the standard
// says close "as if the network had failed" [MQTT-3.1.2-22], and 0x8D
// Keep Alive timeout exists for a server that says why).
func rawClosedMaybeDisconnect(t *testing.T, c *rawConn, rc protocol.ReasonCode) {
	t.Helper()
	select {
	case in, ok := <-c.in:
		if !ok {
			return
		}
		if d, isD := in.p.(*protocol.Disconnect); !isD || d.Reason != rc {
			t.Fatalf("got %s %s, want DISCONNECT %#x or a close", in.h.Type, rawDescribe(in), byte(rc))
		}
		c.expectClosed()
	case <-time.After(rawWait):
		t.Fatalf("connection still open after %v", rawWait)
	}
}

// TestV5FeaturesSwitchedOff turns every optional feature off and checks
// that CONNACK says so [MQTT-3.2.2-9] (3.2.2.3.5, .11, .12, .13), that
// paho.golang reads it, and that a client using a switched-off feature
// anyway is refused the way the standard describes, while a healthy client
// on the same broker keeps working.
func TestV5FeaturesSwitchedOff(t *testing.T) {
	t.Parallel()
	b := startBroker(t, `
[mqtt]
maximum_qos = 1
retain_available = false
wildcard_subscription_available = false
shared_subscription_available = false
subscription_identifier_available = false
`)
	by := newRawBystander(t, b)

	_, ack := rawConnect(t, b, "props", nil)
	p := &ack.Props
	for _, f := range []struct {
		name string
		id   protocol.PropID
		val  byte
		want byte
	}{
		{"Maximum QoS", protocol.PropMaximumQoS, p.MaximumQoS, 1},
		{"Retain Available", protocol.PropRetainAvailable, p.RetainAvailable, 0},
		{"Wildcard Subscription Available", protocol.PropWildcardSubAvailable, p.WildcardSubAvailable, 0},
		{"Subscription Identifiers Available", protocol.PropSubIDAvailable, p.SubIDAvailable, 0},
		{"Shared Subscription Available", protocol.PropSharedSubAvailable, p.SharedSubAvailable, 0},
	} {
		if !p.Has(f.id) || f.val != f.want {
			t.Errorf("%s: present=%v value %d, want present with %d", f.name, p.Has(f.id), f.val, f.want)
		}
	}
	pc := v5Simple(t, b, "paho-props")
	if cp := pc.ack.Properties; cp.MaximumQoS == nil || *cp.MaximumQoS != 1 || cp.RetainAvailable ||
		cp.WildcardSubAvailable || cp.SubIDAvailable || cp.SharedSubAvailable {
		t.Errorf("paho.golang reads CONNACK as %s", cp)
	}

	t.Run("publish QoS 2 above Maximum QoS", func(t *testing.T) {
		// 3.2.2.3.4: a PUBLISH above the announced Maximum QoS is answered
		// with DISCONNECT 0x9B (QoS not supported) [MQTT-3.2.2-11].
		c, _ := rawConnect(t, b, "q2", nil)
		c.send(&protocol.Publish{Topic: []byte("t"), QoS: 2, PacketID: 1, Payload: []byte("x")})
		c.expectDisconnect(protocol.ReasonQoSNotSupported)
		by.check()
	})
	t.Run("publish with RETAIN", func(t *testing.T) {
		// 3.2.2.3.5: RETAIN 1 with Retain Available 0 is answered with
		// DISCONNECT 0x9A (Retain not supported) [MQTT-3.2.2-14].
		c, _ := rawConnect(t, b, "ret", nil)
		c.send(&protocol.Publish{Topic: []byte("t"), Retain: true, Payload: []byte("x")})
		c.expectDisconnect(protocol.ReasonRetainNotSupported)
		by.check()
	})
	t.Run("subscribe QoS 2", func(t *testing.T) {
		// [MQTT-3.2.2-10] a SUBSCRIBE asking QoS 2 is still accepted, granted
		// at most the Maximum QoS.
		c, _ := rawConnect(t, b, "sq2", nil)
		rc := c.sub(0, protocol.Subscription{Filter: []byte("sq2/t"), QoS: 2})
		if len(rc) != 1 || rc[0] != protocol.ReasonGrantedQoS1 {
			t.Fatalf("SUBACK %v, want granted QoS 1", rc)
		}
	})
	t.Run("wildcard subscription", func(t *testing.T) {
		// 3.2.2.3.11 / table 3.9.3: the wildcard filter is refused with
		// 0xA2 (Wildcard Subscriptions not supported); the plain filter in
		// the same SUBSCRIBE is granted [MQTT-3.8.4-5] [MQTT-3.9.3-1].
		// (3.2.2.3.11 also allows DISCONNECT 0xA2; nanoactor refuses per
		// filter in the SUBACK, as the shared case below.)
		c, _ := rawConnect(t, b, "wild", nil)
		rc := c.sub(0,
			protocol.Subscription{Filter: []byte("w/+"), QoS: 1},
			protocol.Subscription{Filter: []byte("w/#"), QoS: 1},
			protocol.Subscription{Filter: []byte("w/x"), QoS: 1})
		want := []protocol.ReasonCode{protocol.ReasonWildcardSubscriptionsNotSupported,
			protocol.ReasonWildcardSubscriptionsNotSupported, protocol.ReasonGrantedQoS1}
		if !slices.Equal(rc, want) {
			t.Fatalf("SUBACK %v, want %v", rc, want)
		}
		c.pub("w/x", 1, "still served")
		if m, _ := c.recv(); string(m.Payload) != "still served" {
			t.Fatalf("got %q", m.Payload)
		}
		by.check()
	})
	t.Run("shared subscription", func(t *testing.T) {
		// 3.2.2.3.13 / table 3.9.3: 0x9E (Shared Subscriptions not supported).
		c, _ := rawConnect(t, b, "shared", nil)
		rc := c.sub(0, protocol.Subscription{Filter: []byte("$share/g/s"), QoS: 1})
		if !slices.Equal(rc, []protocol.ReasonCode{protocol.ReasonSharedSubscriptionsNotSupported}) {
			t.Fatalf("SUBACK %v, want [0x9E]", rc)
		}
		by.check()
	})
	t.Run("subscription identifier", func(t *testing.T) {
		// 3.2.2.3.12: a Subscription Identifier when they are not available
		// is a Protocol Error answered with DISCONNECT 0xA1.
		c, _ := rawConnect(t, b, "subid", nil)
		c.send(&protocol.Subscribe{PacketID: 1, Props: protocol.Properties{SubscriptionIDs: []int{3}},
			Filters: []protocol.Subscription{{Filter: []byte("s"), QoS: 1}}})
		c.expectDisconnect(protocol.ReasonSubscriptionIdentifiersNotSupported)
		by.check()
	})
	t.Run("will QoS 2", func(t *testing.T) {
		// [MQTT-3.2.2-12] CONNACK 0x9B, then close.
		c := rawDial(t, b, protocol.Version5)
		c.send(&protocol.Connect{Level: protocol.Version5, CleanStart: true, ClientID: []byte("wq2"), WillFlag: true,
			Will: protocol.Will{QoS: 2, Topic: []byte("w"), Payload: []byte("x")}})
		c.expectConnack(protocol.ReasonQoSNotSupported)
		c.expectClosed()
	})
	t.Run("will retain", func(t *testing.T) {
		// [MQTT-3.2.2-13] CONNACK 0x9A, then close.
		c := rawDial(t, b, protocol.Version5)
		c.send(&protocol.Connect{Level: protocol.Version5, CleanStart: true, ClientID: []byte("wret"), WillFlag: true,
			Will: protocol.Will{Retain: true, Topic: []byte("w"), Payload: []byte("x")}})
		c.expectConnack(protocol.ReasonRetainNotSupported)
		c.expectClosed()
	})
}

// TestV5QoSMatrix publishes at QoS 0, 1 and 2 to subscribers granted QoS
// 0, 1 and 2 (paho.golang on both ends, which runs every handshake) and
// checks each delivery is at min(publish QoS, granted QoS) [MQTT-3.8.4-8].
func TestV5QoSMatrix(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	var subs [3]*v5Client
	for q := range subs {
		subs[q] = v5Simple(t, b, fmt.Sprintf("sub%d", q))
		sa := subs[q].sub(paho.SubscribeOptions{Topic: "matrix/#", QoS: byte(q)})
		if len(sa.Reasons) != 1 || sa.Reasons[0] != byte(q) {
			t.Fatalf("SUBACK %v, want granted %d", sa.Reasons, q)
		}
	}
	pub := v5Simple(t, b, "pub")
	for q := range 3 {
		r := pub.pub(&paho.Publish{Topic: "matrix/" + strconv.Itoa(q), QoS: byte(q), Payload: []byte{byte(q)}})
		if q > 0 && (r == nil || r.ReasonCode != 0) {
			t.Fatalf("publish QoS %d: response %+v, want Success", q, r)
		}
	}
	for sq, s := range subs {
		got := map[byte]byte{}
		for range 3 {
			m := s.next()
			got[m.Payload[0]] = m.QoS
		}
		for pq := range byte(3) {
			want := min(pq, byte(sq))
			if q, ok := got[pq]; !ok || q != want {
				t.Errorf("subscriber QoS %d, published QoS %d: delivered=%v at QoS %d, want QoS %d", sq, pq, ok, q, want)
			}
		}
		s.none(100 * time.Millisecond)
	}
}

// TestV5QoSHandshakesRaw checks the QoS 1 and 2 exchanges byte by byte in
// both directions: PUBLISH/PUBACK, and PUBLISH/PUBREC/PUBREL/PUBCOMP with
// the same packet id throughout [MQTT-4.3.2-4] [MQTT-4.3.3-8]
// [MQTT-4.3.3-11] [MQTT-2.2.1-5]; what the broker sends carries a
// non-zero id, DUP 0 [MQTT-4.3.2-2] [MQTT-4.3.3-2] [MQTT-2.2.1-4], and after
// the PUBREC a PUBREL [MQTT-4.3.3-4], never the PUBLISH again
// [MQTT-4.3.3-6].
func TestV5QoSHandshakesRaw(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	sub, _ := rawConnect(t, b, "sub", nil)
	sub.subOK("hs/#", 2)
	pub, _ := rawConnect(t, b, "pub", nil)
	for _, q := range []byte{1, 2} {
		id := uint16(100 + q)
		pub.send(&protocol.Publish{Topic: []byte("hs/t"), QoS: q, PacketID: id, Payload: []byte{q}})
		kind := protocol.TypePuback
		if q == 2 {
			kind = protocol.TypePubrec
		}
		if a := pub.nextAck(kind, id); a.Reason != protocol.ReasonSuccess {
			t.Fatalf("QoS %d: %s reason %#x, want Success (there is a subscriber)", q, kind, byte(a.Reason))
		}
		if q == 2 {
			pub.send(&protocol.Ack{Kind: protocol.TypePubrel, PacketID: id})
			if a := pub.nextAck(protocol.TypePubcomp, id); a.Reason != protocol.ReasonSuccess {
				t.Fatalf("PUBCOMP reason %#x", byte(a.Reason))
			}
		}

		p, h := sub.nextPublish()
		if p.QoS != q || p.PacketID == 0 || h.Dup() || !bytes.Equal(p.Payload, []byte{q}) {
			t.Fatalf("delivered %+v dup=%v, want QoS %d, non-zero id, DUP 0", p, h.Dup(), q)
		}
		if q == 1 {
			sub.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: p.PacketID})
			continue
		}
		sub.send(&protocol.Ack{Kind: protocol.TypePubrec, PacketID: p.PacketID})
		sub.nextAck(protocol.TypePubrel, p.PacketID)
		sub.expectNone(rawQuiet) // no PUBLISH resend while the PUBREL is unanswered
		sub.send(&protocol.Ack{Kind: protocol.TypePubcomp, PacketID: p.PacketID})
	}
	sub.expectNone(rawQuiet)
	// No subscriber: PUBACK may say 0x10 No matching subscribers; it must
	// still be a success code for the same id.
	id := pub.nextID()
	pub.send(&protocol.Publish{Topic: []byte("nobody/here"), QoS: 1, PacketID: id})
	if a := pub.nextAck(protocol.TypePuback, id); a.Reason.IsError() {
		t.Fatalf("PUBACK reason %#x for a publish nobody receives", byte(a.Reason))
	}
}

// TestV5OverlappingSubscriptions: one client, three subscriptions matching
// one topic, two of them with Subscription Identifiers. The broker sends
// ONE copy at the highest granted QoS [MQTT-3.3.4-2] carrying every
// matching identifier [MQTT-3.3.4-3] [MQTT-3.3.4-4].
func TestV5OverlappingSubscriptions(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	sub, _ := rawConnect(t, b, "sub", nil)
	sub.sub(1, protocol.Subscription{Filter: []byte("ov/+"), QoS: 0})
	sub.sub(2, protocol.Subscription{Filter: []byte("ov/#"), QoS: 2})
	sub.sub(0, protocol.Subscription{Filter: []byte("ov/x"), QoS: 1})
	pub, _ := rawConnect(t, b, "pub", nil)

	pub.pub("ov/x", 2, "all three")
	m, _ := sub.recv()
	ids := slices.Sorted(slices.Values(m.Props.SubscriptionIDs))
	if m.QoS != 2 || !slices.Equal(ids, []int{1, 2}) {
		t.Fatalf("got QoS %d ids %v, want one copy at QoS 2 with ids [1 2]", m.QoS, m.Props.SubscriptionIDs)
	}
	sub.expectNone(rawQuiet)

	pub.pub("ov/y/z", 1, "only #")
	m, _ = sub.recv()
	if m.QoS != 1 || !slices.Equal(m.Props.SubscriptionIDs, []int{2}) {
		t.Fatalf("got QoS %d ids %v, want QoS 1 with ids [2]", m.QoS, m.Props.SubscriptionIDs)
	}
	sub.expectNone(rawQuiet)
}

// TestV5NoLocal: with No Local the broker does not send a client its own
// messages [MQTT-3.8.3-3]; other clients' messages still arrive, and
// without No Local the client gets its own.
func TestV5NoLocal(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	a, _ := rawConnect(t, b, "a", nil)
	a.sub(0, protocol.Subscription{Filter: []byte("nl/local"), QoS: 1, NoLocal: true})
	a.subOK("nl/echo", 1)
	a.pub("nl/local", 1, "own, suppressed")
	a.pub("nl/echo", 1, "own, echoed")
	if m, _ := a.recv(); string(m.Payload) != "own, echoed" {
		t.Fatalf("got %q on %q, want only the echo", m.Payload, m.Topic)
	}
	a.expectNone(rawQuiet)
	other, _ := rawConnect(t, b, "other", nil)
	other.pub("nl/local", 1, "from other")
	if m, _ := a.recv(); string(m.Payload) != "from other" {
		t.Fatalf("got %q", m.Payload)
	}
}

// TestV5RetainAsPublished: RETAIN is forwarded as published with Retain As
// Published [MQTT-3.3.1-13], and 0 without it [MQTT-3.3.1-12].
func TestV5RetainAsPublished(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	rap, _ := rawConnect(t, b, "rap", nil)
	rap.sub(0, protocol.Subscription{Filter: []byte("rap/t"), QoS: 1, RetainAsPublished: true})
	plain, _ := rawConnect(t, b, "plain", nil)
	plain.subOK("rap/t", 1)
	pub, _ := rawConnect(t, b, "pub", nil)
	pub.pubPacket(&protocol.Publish{Topic: []byte("rap/t"), QoS: 1, Retain: true, Payload: []byte("r")})
	pub.pub("rap/t", 1, "n")
	for _, c := range []struct {
		c    *rawConn
		want []bool
	}{{rap, []bool{true, false}}, {plain, []bool{false, false}}} {
		for i, want := range c.want {
			m, h := c.c.recv()
			if h.Retain() != want {
				t.Errorf("%s message %d (%q): RETAIN %v, want %v", c.c.local(), i, m.Payload, h.Retain(), want)
			}
		}
	}
}

// TestV5RetainedMessages: a retained message is stored [MQTT-3.3.1-5] and
// sent to a new subscriber with RETAIN 1 (3.3.1.3) at min(QoS)
// [MQTT-3.8.4-8]; a newer one replaces it; a non-retained publish leaves it
// [MQTT-3.3.1-8]; an empty retained payload deletes it, is not stored, and
// is still forwarded to current subscribers [MQTT-3.3.1-6] [MQTT-3.3.1-7].
func TestV5RetainedMessages(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	pub, _ := rawConnect(t, b, "pub", nil)
	live, _ := rawConnect(t, b, "live", nil)
	live.subOK("ret/#", 1)
	fresh := func(name string) []rawMsg {
		c, _ := rawConnect(t, b, name, nil)
		c.subOK("ret/#", 1)
		var got []rawMsg
		for {
			p, ok := c.poll(rawQuiet)
			if !ok {
				return got
			}
			got = append(got, rawMsg{p: p})
		}
	}
	retained := func(topic, payload string, qos byte) {
		pub.pubPacket(&protocol.Publish{Topic: []byte(topic), QoS: qos, Retain: true, Payload: []byte(payload)})
		if m, h := live.recv(); string(m.Payload) != payload || h.Retain() {
			t.Fatalf("live subscriber got %q RETAIN %v, want %q RETAIN 0 [MQTT-3.3.1-12]", m.Payload, h.Retain(), payload)
		}
	}

	retained("ret/a", "one", 2)
	got := fresh("s1")
	if len(got) != 1 || string(got[0].p.Payload) != "one" || !got[0].p.Retain || got[0].p.QoS != 1 {
		t.Fatalf("new subscriber got %v, want \"one\" with RETAIN 1 at QoS 1", rawMsgs(got))
	}
	retained("ret/a", "two", 0)
	if got := fresh("s2"); len(got) != 1 || string(got[0].p.Payload) != "two" || got[0].p.QoS != 0 {
		t.Fatalf("after replacing: %v, want only \"two\" at QoS 0", rawMsgs(got))
	}
	pub.pub("ret/a", 1, "three, not retained")
	live.recv()
	if got := fresh("s3"); len(got) != 1 || string(got[0].p.Payload) != "two" {
		t.Fatalf("after a non-retained publish: %v, want still \"two\"", rawMsgs(got))
	}
	retained("ret/b", "bee", 1)
	retained("ret/a", "", 1)
	if got := fresh("s4"); len(got) != 1 || string(got[0].p.Payload) != "bee" {
		t.Fatalf("after deleting ret/a: %v, want only ret/b", rawMsgs(got))
	}
}

func rawMsgs(ms []rawMsg) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s=%q(qos %d retain %v)", m.p.Topic, m.p.Payload, m.p.QoS, m.p.Retain))
	}
	return out
}

// TestV5RetainHandling: 0 sends retained messages on every subscribe
// [MQTT-3.3.1-9]; 1 only when the subscription is new [MQTT-3.3.1-10];
// 2 never [MQTT-3.3.1-11]; resubscribing replaces the subscription
// [MQTT-3.8.4-3].
func TestV5RetainHandling(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	pub, _ := rawConnect(t, b, "pub", nil)
	pub.pubPacket(&protocol.Publish{Topic: []byte("rh/t"), QoS: 1, Retain: true, Payload: []byte("kept")})
	c, _ := rawConnect(t, b, "c", nil)
	step := func(what, filter string, rh byte, want bool) {
		t.Helper()
		c.sub(0, protocol.Subscription{Filter: []byte(filter), QoS: 1, RetainHandling: rh})
		p, ok := c.poll(rawQuiet)
		switch {
		case want && !ok:
			t.Fatalf("%s: retained message not sent", what)
		case !want && ok:
			t.Fatalf("%s: retained message %q sent", what, p.Payload)
		case ok && (!p.Retain || string(p.Payload) != "kept"):
			t.Fatalf("%s: got %q RETAIN %v", what, p.Payload, p.Retain)
		}
		c.expectNone(100 * time.Millisecond)
	}
	step("handling 1, new subscription", "rh/t", 1, true)
	step("handling 1, existing subscription", "rh/t", 1, false)
	step("handling 0, existing subscription", "rh/t", 0, true)
	step("handling 0, again", "rh/t", 0, true)
	step("handling 2, new subscription", "rh/+", 2, false)
	step("handling 2, existing subscription", "rh/+", 2, false)
}

// TestV5DollarTopics: filters starting with a wildcard do not match topics
// starting with '$' [MQTT-4.7.2-1], neither for retained messages on
// subscribe nor for live ones; "$SYS/#" does. The broker's own $SYS
// messages (every second here) are the '$' topics.
func TestV5DollarTopics(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "[sys]\ninterval = \"1s\"\n")
	hash, _ := rawConnect(t, b, "hash", nil)
	hash.subOK("#", 0)
	plus, _ := rawConnect(t, b, "plus", nil)
	plus.subOK("+/broker/uptime", 0)
	sys, _ := rawConnect(t, b, "sys", nil)
	sys.subOK("$SYS/#", 0)
	// Retained $SYS messages reach "$SYS/#" at once; then wait for a live
	// one (RETAIN 0), which shows a publish cycle ran after the wildcard
	// subscriptions were in place.
	sawRetained := false
	for {
		p, h := sys.nextPublish() // fails after rawWait without one
		if !bytes.HasPrefix(p.Topic, []byte("$SYS/")) {
			t.Fatalf("$SYS/# got %q", p.Topic)
		}
		if !h.Retain() {
			break
		}
		sawRetained = true
	}
	if !sawRetained {
		t.Errorf("$SYS/# got no retained $SYS message on subscribe")
	}
	hash.expectNone(100 * time.Millisecond)
	plus.expectNone(100 * time.Millisecond)
	// The wildcard subscriptions do work for ordinary topics.
	hash.pub("x/broker/uptime", 0, "ordinary")
	if p, _ := hash.nextPublish(); string(p.Topic) != "x/broker/uptime" {
		t.Fatalf("# got %q", p.Topic)
	}
	if p, _ := plus.nextPublish(); string(p.Topic) != "x/broker/uptime" {
		t.Fatalf("+/broker/uptime got %q", p.Topic)
	}
}

// TestV5PropertiesPassThrough: Payload Format Indicator, Content Type,
// Response Topic, Correlation Data and User Properties reach the subscriber
// unaltered, User Properties in order [MQTT-3.3.2-4] [MQTT-3.3.2-15]
// [MQTT-3.3.2-16] [MQTT-3.3.2-17] [MQTT-3.3.2-18] [MQTT-3.3.2-20], at every
// QoS; a message without them gets none added.
func TestV5PropertiesPassThrough(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	sub := v5Simple(t, b, "sub")
	sub.sub(paho.SubscribeOptions{Topic: "props/#", QoS: 2})
	pub := v5Simple(t, b, "pub")
	one := byte(1)
	want := paho.PublishProperties{
		PayloadFormat:   &one,
		ContentType:     "text/plain; charset=utf-8",
		ResponseTopic:   "reply/here",
		CorrelationData: []byte{0, 1, 2, 0xFF},
		User:            paho.UserProperties{{Key: "k", Value: "v1"}, {Key: "a", Value: "b"}, {Key: "k", Value: "v2"}},
	}
	for q := range byte(3) {
		props := want
		pub.pub(&paho.Publish{Topic: "props/" + strconv.Itoa(int(q)), QoS: q, Payload: []byte("héllo"), Properties: &props})
		m := sub.next()
		g := m.Properties
		if g == nil || g.PayloadFormat == nil || *g.PayloadFormat != 1 || g.ContentType != want.ContentType ||
			g.ResponseTopic != want.ResponseTopic || !bytes.Equal(g.CorrelationData, want.CorrelationData) ||
			!slices.Equal(g.User, want.User) || g.MessageExpiry != nil || g.TopicAlias != nil {
			t.Fatalf("QoS %d: received properties %+v, want %+v", q, g, want)
		}
	}
	pub.pub(&paho.Publish{Topic: "props/bare", QoS: 1, Payload: []byte("x")})
	if g := sub.next().Properties; g != nil && (g.PayloadFormat != nil || g.ContentType != "" || g.ResponseTopic != "" ||
		g.CorrelationData != nil || len(g.User) > 0 || g.MessageExpiry != nil) {
		t.Fatalf("bare message received with properties %+v", g)
	}
}

// TestV5MessageExpiry: the Message Expiry Interval is forwarded as the time
// left [MQTT-3.3.2-6] (lower after a wait in an offline queue or as a
// retained message), and a message that expired in the queue, or a
// retained one that expired, is not delivered [MQTT-3.3.2-5].
func TestV5MessageExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	off, _ := rawPersistent(t, b, "offline", true, 60)
	off.subOK("exp/#", 1)
	off.disconnect(protocol.ReasonSuccess)
	rawGone(t, b, off)
	online, _ := rawConnect(t, b, "online", nil)
	online.subOK("exp/#", 1)

	pub, _ := rawConnect(t, b, "pub", nil)
	expiring := func(topic string, secs uint32) {
		p := &protocol.Publish{Topic: []byte(topic), QoS: 1, Payload: []byte(topic), Retain: topic[0] == 'r'}
		if secs > 0 {
			p.Props.MessageExpiry = secs
			p.Props.Set(protocol.PropMessageExpiry)
		}
		pub.pubPacket(p)
	}
	expiring("exp/short", 1)
	expiring("exp/long", 30)
	expiring("exp/never", 0)
	expiring("ret-exp/short", 1)
	expiring("ret-exp/long", 30)
	published := time.Now()
	for _, want := range []struct {
		topic string
		exp   uint32
	}{{"exp/short", 1}, {"exp/long", 30}, {"exp/never", 0}} {
		m, _ := online.recv()
		has := m.Props.Has(protocol.PropMessageExpiry)
		if string(m.Topic) != want.topic || has != (want.exp > 0) || has && (m.Props.MessageExpiry > want.exp || m.Props.MessageExpiry+1 < want.exp) {
			t.Fatalf("online subscriber got %q expiry present=%v %d, want %q about %d", m.Topic, has, m.Props.MessageExpiry, want.topic, want.exp)
		}
	}

	time.Sleep(2200*time.Millisecond - time.Since(published))
	waited := time.Since(published)
	off, ack := rawPersistent(t, b, "offline", false, 60)
	if !ack.SessionPresent {
		t.Fatal("Session Present 0 on reconnect")
	}
	got := off.collect(2)
	long, never := got[0].p, got[1].p
	if string(long.Topic) != "exp/long" || string(never.Topic) != "exp/never" {
		t.Fatalf("offline queue delivered %v, want exp/long, exp/never (exp/short expired)", rawMsgs(got))
	}
	maxLeft := 30 - uint32(waited/time.Second)
	if !long.Props.Has(protocol.PropMessageExpiry) || long.Props.MessageExpiry > maxLeft || long.Props.MessageExpiry == 0 {
		t.Fatalf("exp/long forwarded with expiry %d after %v in the queue, want 1..%d", long.Props.MessageExpiry, waited, maxLeft)
	}
	if never.Props.Has(protocol.PropMessageExpiry) {
		t.Fatalf("exp/never forwarded with an expiry of %d", never.Props.MessageExpiry)
	}
	off.expectNone(rawQuiet)

	late, _ := rawConnect(t, b, "late", nil)
	late.subOK("ret-exp/#", 1)
	m, h := late.recv()
	if string(m.Topic) != "ret-exp/long" || !h.Retain() || !m.Props.Has(protocol.PropMessageExpiry) ||
		m.Props.MessageExpiry > maxLeft || m.Props.MessageExpiry == 0 {
		t.Fatalf("retained: got %q RETAIN %v expiry %d, want ret-exp/long, RETAIN 1, expiry 1..%d (ret-exp/short expired)",
			m.Topic, h.Retain(), m.Props.MessageExpiry, maxLeft)
	}
	late.expectNone(rawQuiet)
}

// TestV5SharedRoundRobin: with "$share/g/..." each message goes to exactly
// one member of the group (4.8.2), round robin spreading them evenly, at
// the member's granted QoS [MQTT-4.8.2-3]; a non-shared subscriber on the
// same topic still gets every message.
func TestV5SharedRoundRobin(t *testing.T) {
	t.Parallel()
	rawSharedTest(t, startBroker(t, ""), 3, 30, true)
}

// TestV5SharedRandom: shared_subscription_strategy = "random" still
// delivers every message exactly once overall, and (60 messages, 3
// members) reaches every member.
func TestV5SharedRandom(t *testing.T) {
	t.Parallel()
	rawSharedTest(t, startBroker(t, "[mqtt]\nshared_subscription_strategy = \"random\"\n"), 3, 60, false)
}

func rawSharedTest(t *testing.T, b *broker, members, n int, even bool) {
	t.Helper()
	var ms []*rawConn
	for i := range members {
		c, _ := rawConnect(t, b, fmt.Sprintf("member%d", i), nil)
		c.subOK("$share/g/sh/t", 1)
		ms = append(ms, c)
	}
	other, _ := rawConnect(t, b, "other-group", nil)
	other.subOK("$share/h/sh/t", 0)
	plain, _ := rawConnect(t, b, "plain", nil)
	plain.subOK("sh/t", 1)
	pub, _ := rawConnect(t, b, "pub", nil)
	for i := range n {
		pub.pub("sh/t", 1, strconv.Itoa(i))
	}
	seen := map[string]int{}
	per := make([]int, members)
	deadline := time.Now().Add(rawWait)
	for total := 0; total < n; {
		if time.Now().After(deadline) {
			t.Fatalf("group g delivered %d of %d messages: %v", total, n, per)
		}
		for i, c := range ms {
			if p, ok := c.poll(10 * time.Millisecond); ok {
				if p.QoS != 1 {
					t.Fatalf("member got QoS %d, granted 1", p.QoS)
				}
				seen[string(p.Payload)]++
				per[i]++
				total++
			}
		}
	}
	for _, c := range ms {
		c.expectNone(rawQuiet)
	}
	for i := range n {
		if seen[strconv.Itoa(i)] != 1 {
			t.Errorf("message %d delivered %d times to group g, want once", i, seen[strconv.Itoa(i)])
		}
	}
	for i, k := range per {
		if even && k != n/members || k == 0 {
			t.Errorf("member %d got %d of %d messages (all: %v)", i, k, n, per)
		}
	}
	// Another group gets its own copy of each, and so does the plain
	// subscriber, in order [MQTT-4.6.0-6].
	for i, m := range plain.collect(n) {
		if string(m.p.Payload) != strconv.Itoa(i) {
			t.Fatalf("plain subscriber message %d is %q", i, m.p.Payload)
		}
	}
	if got := other.collect(n); len(got) != n {
		t.Fatalf("group h got %d", len(got))
	}
}

// TestV5TopicAlias: a client's first PUBLISH names topic and alias, later
// ones the alias alone, and subscribers get the right topic
// [MQTT-3.3.2-12]; an alias may be remapped; the broker sends no alias to a
// client that allowed none [MQTT-3.1.2-27]. Errors: alias 0 or above the
// maximum is 0x94 [MQTT-3.3.2-8] [MQTT-3.3.2-9]; an alias never set, or set
// on a previous connection [MQTT-3.3.2-7], with an empty topic is a
// Protocol Error, 0x82 (3.3.2.3.4).
func TestV5TopicAlias(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "[mqtt]\ntopic_alias_maximum = 5\n")
	by := newRawBystander(t, b)
	sub, _ := rawConnect(t, b, "sub", nil)
	sub.subOK("ta/#", 1)
	pub, ack := rawPersistent(t, b, "pub", true, 60)
	if ack.Props.TopicAliasMaximum != 5 {
		t.Fatalf("Topic Alias Maximum %d, want 5", ack.Props.TopicAliasMaximum)
	}
	var pid uint16
	aliased := func(topic string, alias uint16) *protocol.Publish {
		pid++
		p := &protocol.Publish{Topic: []byte(topic), QoS: 1, PacketID: pid, Payload: []byte(topic + "@" + strconv.Itoa(int(alias)))}
		p.Props.TopicAlias = alias
		p.Props.Set(protocol.PropTopicAlias)
		return p
	}
	for _, s := range []struct {
		topic string
		alias uint16
		want  string
	}{{"ta/x", 1, "ta/x"}, {"", 1, "ta/x"}, {"ta/y", 1, "ta/y"}, {"", 1, "ta/y"}, {"ta/z", 5, "ta/z"}, {"", 5, "ta/z"}, {"", 1, "ta/y"}} {
		pub.pubPacket(aliased(s.topic, s.alias))
		m, _ := sub.recv()
		if string(m.Topic) != s.want || m.Props.Has(protocol.PropTopicAlias) {
			t.Fatalf("publish (%q, alias %d): subscriber got topic %q alias present %v, want %q without alias",
				s.topic, s.alias, m.Topic, m.Props.Has(protocol.PropTopicAlias), s.want)
		}
	}
	pub.disconnect(protocol.ReasonSuccess)

	t.Run("alias 0", func(t *testing.T) {
		c, _ := rawConnect(t, b, "zero", nil)
		c.write(rawPacket(0x30, // PUBLISH QoS 0
			rawStr("ta/0"),
			rawProps(0x23, 0x00, 0x00), // Topic Alias 0
			[]byte("x")))
		c.expectDisconnect(protocol.ReasonTopicAliasInvalid)
		rawOneLog(t, b, c, "topic alias invalid")
		by.check()
	})
	t.Run("alias above maximum", func(t *testing.T) {
		c, _ := rawConnect(t, b, "six", nil)
		c.send(aliased("ta/6", 6))
		c.expectDisconnect(protocol.ReasonTopicAliasInvalid)
		rawOneLog(t, b, c, "topic alias invalid")
		by.check()
	})
	t.Run("unknown alias", func(t *testing.T) {
		c, _ := rawConnect(t, b, "unknown", nil)
		c.send(aliased("", 2))
		c.expectDisconnect(protocol.ReasonProtocolError)
		rawOneLog(t, b, c, "protocol error")
		by.check()
	})
	t.Run("alias from a previous connection", func(t *testing.T) {
		// The session of "pub" is kept (expiry 60), its aliases are not.
		c, _ := rawPersistent(t, b, "pub", false, 60)
		c.send(aliased("", 1))
		c.expectDisconnect(protocol.ReasonProtocolError)
		by.check()
	})
}

// TestV5FlowClientReceiveMaximum: the broker keeps at most the client's
// Receive Maximum QoS 1/2 PUBLISHes unacknowledged [MQTT-3.3.4-9]
// [MQTT-4.9.0-2], sends the next as each is acknowledged, in order.
func TestV5FlowClientReceiveMaximum(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	sub, _ := rawConnect(t, b, "slow", func(cp *protocol.Connect) {
		cp.Props.ReceiveMaximum = 2
		cp.Props.Set(protocol.PropReceiveMaximum)
	})
	sub.subOK("fc/#", 2)
	pub, _ := rawConnect(t, b, "pub", nil)
	for i := range 6 {
		pub.pub("fc/t", byte(1+i%2), strconv.Itoa(i))
	}
	recv := func(i int) *protocol.Publish {
		t.Helper()
		p, _ := sub.nextPublish()
		if string(p.Payload) != strconv.Itoa(i) {
			t.Fatalf("got message %q, want %d", p.Payload, i)
		}
		return p
	}
	p0, p1 := recv(0), recv(1)
	sub.expectNone(rawQuiet) // two in flight: the window is full
	sub.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: p0.PacketID})
	p2 := recv(2)
	sub.expectNone(rawQuiet)
	// A PUBREC does not free the slot of a QoS 2 message; PUBCOMP does
	// (4.9: the quota is returned on PUBCOMP).
	sub.send(&protocol.Ack{Kind: protocol.TypePubrec, PacketID: p1.PacketID})
	sub.nextAck(protocol.TypePubrel, p1.PacketID)
	sub.expectNone(rawQuiet)
	sub.send(&protocol.Ack{Kind: protocol.TypePubcomp, PacketID: p1.PacketID})
	p3 := recv(3)
	sub.send(&protocol.Ack{Kind: protocol.TypePubrec, PacketID: p3.PacketID})
	sub.nextAck(protocol.TypePubrel, p3.PacketID)
	sub.send(&protocol.Ack{Kind: protocol.TypePubcomp, PacketID: p3.PacketID})
	sub.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: p2.PacketID})
	got := sub.collect(2)
	if string(got[0].p.Payload) != "4" || string(got[1].p.Payload) != "5" {
		t.Fatalf("got %v, want 4, 5", rawMsgs(got))
	}
}

// TestV5FlowBrokerReceiveMaximum: a client with more unacknowledged QoS 2
// PUBLISHes than the broker's Receive Maximum [MQTT-3.3.4-7] is
// disconnected with 0x93 (3.3.4); a completed exchange frees its slot; the
// messages accepted before were delivered once.
func TestV5FlowBrokerReceiveMaximum(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "[mqtt]\nreceive_maximum = 2\n")
	by := newRawBystander(t, b)
	sub, _ := rawConnect(t, b, "sub", nil)
	sub.subOK("rm/#", 2)
	pub, ack := rawConnect(t, b, "greedy", nil)
	if ack.Props.ReceiveMaximum != 2 {
		t.Fatalf("Receive Maximum %d, want 2", ack.Props.ReceiveMaximum)
	}
	q2 := func(id uint16) {
		pub.send(&protocol.Publish{Topic: []byte("rm/t"), QoS: 2, PacketID: id, Payload: []byte{byte(id)}})
	}
	q2(1)
	pub.nextAck(protocol.TypePubrec, 1)
	q2(2)
	pub.nextAck(protocol.TypePubrec, 2)
	pub.send(&protocol.Ack{Kind: protocol.TypePubrel, PacketID: 1})
	pub.nextAck(protocol.TypePubcomp, 1)
	q2(3)
	pub.nextAck(protocol.TypePubrec, 3)
	q2(4) // third unacknowledged: one too many
	pub.expectDisconnect(protocol.ReasonReceiveMaximumExceeded)
	got := sub.collect(3)
	for i, m := range got {
		if m.p.Payload[0] != byte(i+1) {
			t.Fatalf("subscriber got %v, want messages 1, 2, 3", rawMsgs(got))
		}
	}
	sub.expectNone(rawQuiet)
	by.check()
}

// TestV5FlowClientMaximumPacketSize: the broker never sends a packet larger
// than the client's Maximum Packet Size [MQTT-3.1.2-24]; such a message is
// dropped as if sent [MQTT-3.1.2-25] and the next ones still flow.
func TestV5FlowClientMaximumPacketSize(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	sub, _ := rawConnect(t, b, "small", func(cp *protocol.Connect) {
		cp.Props.MaximumPacketSize = 128
		cp.Props.Set(protocol.PropMaximumPacketSize)
		cp.Props.ReceiveMaximum = 1 // a dropped QoS 1 message must not hold the window
		cp.Props.Set(protocol.PropReceiveMaximum)
	})
	sub.subOK("mps/#", 1)
	pub, _ := rawConnect(t, b, "pub", nil)
	sizes := []int{10, 500, 116, 117, 20}
	for i, n := range sizes {
		pub.pub("mps/"+strconv.Itoa(i), 1, string(bytes.Repeat([]byte{'a'}, n)))
	}
	// PUBLISH QoS 1 to "mps/i": 2 header + 7 topic + 2 id + 1 property
	// length = 12 bytes + payload: 116 makes exactly 128, 117 one too many.
	for _, want := range []int{0, 2, 4} {
		p, h := sub.recv()
		if size := h.Len() + h.Remaining; size > 128 {
			t.Fatalf("received a %d-byte packet, Maximum Packet Size 128", size)
		}
		if string(p.Topic) != "mps/"+strconv.Itoa(want) {
			t.Fatalf("got %q, want mps/%d", p.Topic, want)
		}
	}
	sub.expectNone(rawQuiet)
}

// TestV5FlowServerMaximumPacketSize: a packet larger than the Maximum Packet
// Size the broker announced [MQTT-3.2.2-15] is answered with DISCONNECT
// 0x95 (3.2.2.3.6); one that fits is accepted.
func TestV5FlowServerMaximumPacketSize(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "[mqtt]\nmax_packet_size = 1024\nconnect_packet_max = 1024\n")
	by := newRawBystander(t, b)
	c, ack := rawConnect(t, b, "big", nil)
	if ack.Props.MaximumPacketSize != 1024 {
		t.Fatalf("Maximum Packet Size %d, want 1024", ack.Props.MaximumPacketSize)
	}
	c.subOK("big/#", 0)
	// 1024 bytes exactly: 3 header + 7 topic + 1 props + 1013 payload.
	c.send(&protocol.Publish{Topic: []byte("big/t"), Payload: bytes.Repeat([]byte{'a'}, 1013)})
	if p, h := c.nextPublish(); len(p.Payload) != 1013 || h.Len()+h.Remaining != 1024 {
		t.Fatalf("got %d-byte payload in a %d-byte packet", len(p.Payload), h.Len()+h.Remaining)
	}
	c.send(&protocol.Publish{Topic: []byte("big/t"), Payload: bytes.Repeat([]byte{'a'}, 1014)})
	c.expectDisconnect(protocol.ReasonPacketTooLarge)
	rawOneLog(t, b, c, "packet too large")
	by.check()
}

// TestV5SubscribeInvalidFilters: each invalid filter of a SUBSCRIBE gets
// 0x8F Topic Filter invalid in its place of the SUBACK, the valid ones are
// granted [MQTT-3.8.4-5] [MQTT-3.9.3-1]: '#' not last [MQTT-4.7.1-1], '+'
// not a whole level [MQTT-4.7.1-2], a shared filter without a share name
// or without a filter [MQTT-4.8.2-1] [MQTT-4.8.2-2]. No Local on a shared
// subscription is a Protocol Error [MQTT-3.8.3-4]: DISCONNECT 0x82.
func TestV5SubscribeInvalidFilters(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	c, _ := rawConnect(t, b, "c", nil)
	var subs []protocol.Subscription
	for _, f := range []string{"a/#/b", "a+", "$share//t", "$share/g", "$share/g+/t", "ok/+/#"} {
		subs = append(subs, protocol.Subscription{Filter: []byte(f), QoS: 1})
	}
	rc := c.sub(0, subs...)
	bad := protocol.ReasonTopicFilterInvalid
	if want := []protocol.ReasonCode{bad, bad, bad, bad, bad, protocol.ReasonGrantedQoS1}; !slices.Equal(rc, want) {
		t.Fatalf("SUBACK %v, want %v", rc, want)
	}
	c.pub("ok/x/y", 1, "valid filter works")
	if m, _ := c.recv(); string(m.Topic) != "ok/x/y" {
		t.Fatalf("got %q", m.Topic)
	}
	c.send(&protocol.Subscribe{PacketID: 9, Filters: []protocol.Subscription{{Filter: []byte("$share/g/t"), NoLocal: true}}})
	c.expectDisconnect(protocol.ReasonProtocolError)
}

// TestV5Unsubscribe: UNSUBACK has one reason per filter, in order,
// Success or 0x11 No subscription existed [MQTT-3.11.3-1]
// [MQTT-3.10.4-5], and the broker stops sending what the removed filter
// matched [MQTT-3.10.4-1] [MQTT-3.10.4-2].
func TestV5Unsubscribe(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	c, _ := rawConnect(t, b, "c", nil)
	c.subOK("un/a", 1)
	c.subOK("un/+", 1)
	c.send(&protocol.Unsubscribe{PacketID: 77, Filters: [][]byte{[]byte("un/a"), []byte("un/never")}})
	ua := rawNext[*protocol.Unsuback](c)
	want := []protocol.ReasonCode{protocol.ReasonSuccess, protocol.ReasonNoSubscriptionExisted}
	if ua.PacketID != 77 || !slices.Equal(ua.Reasons, want) {
		t.Fatalf("UNSUBACK id %d reasons %v, want id 77 %v", ua.PacketID, ua.Reasons, want)
	}
	c.pub("un/a", 1, "via un/+ only")
	if m, _ := c.recv(); string(m.Payload) != "via un/+ only" {
		t.Fatalf("got %q", m.Payload)
	}
	c.expectNone(rawQuiet) // one copy: un/a is gone
	c.send(&protocol.Unsubscribe{PacketID: 78, Filters: [][]byte{[]byte("un/+")}})
	rawNext[*protocol.Unsuback](c)
	c.pub("un/a", 1, "nobody")
	c.expectNone(rawQuiet)
}

// TestV5SessionExpiryCapped: a Session Expiry Interval above
// max_session_expiry is lowered, and CONNACK tells the client the value
// used (3.2.2.3.2).
func TestV5SessionExpiryCapped(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "[mqtt]\nmax_session_expiry = \"10s\"\n")
	_, ack := rawPersistent(t, b, "long", true, 3600)
	if !ack.Props.Has(protocol.PropSessionExpiry) || ack.Props.SessionExpiry != 10 {
		t.Fatalf("CONNACK Session Expiry Interval present=%v %d, want 10", ack.Props.Has(protocol.PropSessionExpiry), ack.Props.SessionExpiry)
	}
	_, ack = rawPersistent(t, b, "short", true, 5)
	if ack.Props.Has(protocol.PropSessionExpiry) {
		t.Fatalf("CONNACK Session Expiry Interval %d for an accepted value", ack.Props.SessionExpiry)
	}
}

// TestV5KeepAlivePing: a client that sends PINGREQ within its keepalive
// stays connected past 1.5 times it, and every PINGREQ gets a PINGRESP
// [MQTT-3.12.4-1].
func TestV5KeepAlivePing(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	c, _ := rawConnect(t, b, "pinger", func(cp *protocol.Connect) { cp.KeepAlive = 2 })
	for range 8 {
		time.Sleep(500 * time.Millisecond)
		c.send(&protocol.Pingreq{})
		rawNext[*protocol.Pingresp](c)
	}
	c.subOK("alive", 0) // 4 s later, past 1.5 times the keepalive, still served
}

// TestV5PipelinedOrder: 500 QoS 1 messages sent back to back by one client
// reach a subscriber whose Receive Maximum is 7 in the order sent
// [MQTT-4.6.0-5] [MQTT-4.6.0-6], none lost, while the subscriber's window
// and the session queue take turns.
func TestV5PipelinedOrder(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	sub, _ := rawConnect(t, b, "sub", func(cp *protocol.Connect) {
		cp.Props.ReceiveMaximum = 7
		cp.Props.Set(protocol.PropReceiveMaximum)
	})
	sub.subOK("po/t", 1)
	pub, _ := rawConnect(t, b, "pub", nil)
	const n = 500
	var burst []byte
	for i := range n {
		p := &protocol.Publish{Topic: []byte("po/t"), QoS: 1, PacketID: uint16(i + 1), Payload: []byte(strconv.Itoa(i))}
		burst, _ = p.Append(burst, protocol.Version5)
	}
	pub.write(burst)
	for i, m := range sub.collect(n) {
		if string(m.p.Payload) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q: out of order", i, m.p.Payload)
		}
	}
	for i := range n {
		pub.nextAck(protocol.TypePuback, uint16(i+1))
	}
}

// TestV5SessionChurnKeepsOrder: a persistent subscriber (Receive Maximum
// 10) that drops its connection every 40 messages without acknowledging
// the last, and reconnects with Clean Start 0, still sees all 300 QoS 1
// messages, in order: what it had not acknowledged comes again first, with
// DUP 1 [MQTT-4.4.0-1] [MQTT-4.6.0-1], nothing is skipped or reordered
// [MQTT-4.6.0-6], and every PUBLISH of the publisher was acknowledged.
func TestV5SessionChurnKeepsOrder(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	connect := func(clean bool) *rawConn {
		c, _ := rawConnect(t, b, "churn", func(cp *protocol.Connect) {
			cp.CleanStart = clean
			cp.Props.SessionExpiry = 60
			cp.Props.Set(protocol.PropSessionExpiry)
			cp.Props.ReceiveMaximum = 10
			cp.Props.Set(protocol.PropReceiveMaximum)
		})
		return c
	}
	sub := connect(true)
	sub.subOK("churn/t", 1)
	pub, _ := rawConnect(t, b, "pub", nil)
	const n = 300
	var burst []byte
	for i := range n {
		p := &protocol.Publish{Topic: []byte("churn/t"), QoS: 1, PacketID: uint16(i + 1), Payload: []byte(strconv.Itoa(i))}
		burst, _ = p.Append(burst, protocol.Version5)
	}
	pub.write(burst)

	next, seen, reconnects := 0, 0, 0
	for next < n {
		p, h := sub.nextPublish()
		v, err := strconv.Atoi(string(p.Payload))
		switch {
		case err != nil:
			t.Fatalf("payload %q", p.Payload)
		case v > next:
			t.Fatalf("got message %d, want %d next: skipped or reordered (after %d reconnects)", v, next, reconnects)
		case v < next && !h.Dup():
			t.Fatalf("message %d again without DUP (next new one is %d)", v, next)
		case v == next:
			next++
		}
		if seen++; seen%40 == 0 {
			sub.drop() // this one stays unacknowledged
			sub = connect(false)
			reconnects++
			continue
		}
		sub.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: p.PacketID})
	}
	for i := range n {
		pub.nextAck(protocol.TypePuback, uint16(i+1))
	}
}

// rawAliasResolver tracks the topic aliases the broker sets toward one
// connection of a client that allowed max of them.
type rawAliasResolver struct {
	t       *testing.T
	max     uint16
	aliases map[uint16]string
	used    int // PUBLISHes that came with an alias alone
}

// resolve returns the topic of p: its own, or the one its alias names. An
// alias outside 1..max [MQTT-3.3.2-11], or one never set on this connection
// with an empty topic [MQTT-3.3.2-7] (3.3.2.3.4), fails the test.
func (r *rawAliasResolver) resolve(p *protocol.Publish) string {
	r.t.Helper()
	if !p.Props.Has(protocol.PropTopicAlias) {
		if len(p.Topic) == 0 {
			r.t.Fatalf("PUBLISH with neither topic nor alias")
		}
		return string(p.Topic)
	}
	a := p.Props.TopicAlias
	if a == 0 || a > r.max {
		r.t.Fatalf("broker used topic alias %d, client allowed 1..%d", a, r.max)
	}
	if len(p.Topic) > 0 {
		r.aliases[a] = string(p.Topic)
		return string(p.Topic)
	}
	topic, ok := r.aliases[a]
	if !ok {
		r.t.Fatalf("broker used topic alias %d alone before setting it on this connection", a)
	}
	r.used++
	return topic
}

// TestV5TopicAliasToClient: toward a client that announced a Topic Alias
// Maximum the broker may use aliases, never above that maximum
// [MQTT-3.3.2-11], always set with the topic before being used alone on a
// connection [MQTT-3.3.2-7]; whatever it does, the client resolves every
// message to the topic it was published on. A message dropped for the
// client's Maximum Packet Size [MQTT-3.1.2-25] must not leave behind an
// alias the client never learned.
func TestV5TopicAliasToClient(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	connect := func(clean bool) (*rawConn, *rawAliasResolver) {
		c, _ := rawConnect(t, b, "aliased", func(cp *protocol.Connect) {
			cp.CleanStart = clean
			cp.Props.SessionExpiry = 60
			cp.Props.Set(protocol.PropSessionExpiry)
			cp.Props.TopicAliasMaximum = 2
			cp.Props.Set(protocol.PropTopicAliasMaximum)
			cp.Props.MaximumPacketSize = 200
			cp.Props.Set(protocol.PropMaximumPacketSize)
		})
		return c, &rawAliasResolver{t: t, max: 2, aliases: map[uint16]string{}}
	}
	sub, res := connect(true)
	sub.subOK("oa/#", 1)
	pub, _ := rawConnect(t, b, "pub", nil)
	// The first message is too large for the client: dropped, while aliases
	// are still free. Three topics compete for two aliases.
	seq := []string{"oa/big", "oa/big", "oa/a", "oa/b", "oa/a", "oa/b", "oa/big", "oa/c", "oa/a", "oa/c", "oa/a"}
	big := string(bytes.Repeat([]byte{'x'}, 300))
	var want []string
	for i, topic := range seq {
		payload := strconv.Itoa(i)
		if i == 0 {
			payload = big // too large for the client: dropped
		} else {
			want = append(want, topic+"="+payload)
		}
		pub.pub(topic, 1, payload)
	}
	var got []string
	for _, m := range sub.collect(len(want)) {
		got = append(got, res.resolve(m.p)+"="+string(m.p.Payload))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("resolved %v, want %v", got, want)
	}
	sub.expectNone(rawQuiet)
	t.Logf("%d of %d messages used an alias alone", res.used, len(want))

	// A new connection starts with no aliases: the broker may not use one
	// set on the old connection [MQTT-3.3.2-7].
	sub.disconnect(protocol.ReasonSuccess)
	sub, res = connect(false)
	pub.pub("oa/a", 1, "after reconnect")
	pub.pub("oa/a", 1, "again")
	for _, m := range sub.collect(2) {
		if topic := res.resolve(m.p); topic != "oa/a" {
			t.Fatalf("after reconnect resolved %q, want oa/a", topic)
		}
	}
}

// TestV5SharedQoS2InFlightStays: once a QoS 2 message of a shared
// subscription has been sent to one member, it belongs to that member.
// If its connection breaks before the exchange completes, the broker
// completes it with that member when it reconnects [MQTT-4.8.2-4]; if the
// member's session ends first, the message goes to no other member
// [MQTT-4.8.2-5]. (Giving it to another member would deliver it twice:
// the first member may already have handed it on, 4.3.3 Method A.)
func TestV5SharedQoS2InFlightStays(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	pub, _ := rawConnect(t, b, "pub", nil)
	for _, tc := range []struct {
		name   string
		expiry uint32
	}{{"member reconnects", 60}, {"member session ends", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			group := "$share/g" + strconv.Itoa(int(tc.expiry)) + "/sq2"
			var ms [2]*rawConn
			for i := range ms {
				ms[i], _ = rawPersistent(t, b, "m"+strconv.Itoa(i)+"-"+strconv.Itoa(int(tc.expiry)), true, tc.expiry)
				ms[i].subOK(group, 2)
			}
			pub.pub("sq2", 2, "exactly once")
			// Find the member it went to; it sends no PUBREC.
			var got, other int
			var first *protocol.Publish
			for deadline := time.Now().Add(rawWait); first == nil; {
				for i, c := range ms {
					select {
					case in := <-c.in:
						p, ok := in.p.(*protocol.Publish)
						if !ok || p.QoS != 2 {
							t.Fatalf("member %d got %s", i, rawDescribe(in))
						}
						first, got, other = p, i, 1-i
					case <-time.After(10 * time.Millisecond):
					}
				}
				if time.Now().After(deadline) {
					t.Fatal("no member got the message")
				}
			}
			ms[got].drop()
			ms[other].expectNone(700 * time.Millisecond)
			if tc.expiry == 0 {
				return
			}
			c, ack := rawPersistent(t, b, "m"+strconv.Itoa(got)+"-60", false, 60)
			if !ack.SessionPresent {
				t.Fatal("Session Present 0")
			}
			p, h := c.nextPublish()
			if string(p.Payload) != "exactly once" || !h.Dup() || p.PacketID != first.PacketID {
				t.Fatalf("on reconnect got %q dup %v id %d, want the same message with DUP 1 and id %d",
					p.Payload, h.Dup(), p.PacketID, first.PacketID)
			}
		})
	}
}

// TestV5SharedUnsubscribeCompletesInFlight: a member that unsubscribes from
// its shared group while a QoS 1 message of the group is in flight to it
// still gets that delivery completed [MQTT-3.10.4-3]; the message is not
// sent to another member as well.
func TestV5SharedUnsubscribeCompletesInFlight(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	var ms [2]*rawConn
	for i := range ms {
		ms[i], _ = rawConnect(t, b, "m"+strconv.Itoa(i), nil)
		ms[i].subOK("$share/g/su", 1)
	}
	pub, _ := rawConnect(t, b, "pub", nil)
	pub.pub("su", 1, "in flight")
	var got int
	var p *protocol.Publish
	for deadline := time.Now().Add(rawWait); p == nil; {
		for i, c := range ms {
			select {
			case in := <-c.in:
				q, ok := in.p.(*protocol.Publish)
				if !ok {
					t.Fatalf("member %d got %s", i, rawDescribe(in))
				}
				p, got = q, i
			case <-time.After(10 * time.Millisecond):
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no member got the message")
		}
	}
	a := ms[got]
	a.send(&protocol.Unsubscribe{PacketID: 50, Filters: [][]byte{[]byte("$share/g/su")}})
	rawNext[*protocol.Unsuback](a)
	ms[1-got].expectNone(rawQuiet) // not sent twice
	a.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: p.PacketID})
	a.expectNone(rawQuiet)
	pub.pub("su", 1, "next")
	if m, _ := ms[1-got].recv(); string(m.Payload) != "next" {
		t.Fatalf("remaining member got %q", m.Payload)
	}
}

// TestV5ErrorAckEndsDelivery: a PUBACK or PUBREC with a reason of 0x80 or
// more ends the delivery: no PUBREL follows, nothing is sent again after a
// reconnect [MQTT-4.4.0-2], and a shared subscription's message goes to no
// other member [MQTT-4.8.2-6].
func TestV5ErrorAckEndsDelivery(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	pub, _ := rawConnect(t, b, "pub", nil)

	c, _ := rawPersistent(t, b, "refuser", true, 60)
	c.subOK("ea/t", 2)
	pub.pub("ea/t", 2, "refused")
	p, _ := c.nextPublish()
	c.send(&protocol.Ack{Kind: protocol.TypePubrec, PacketID: p.PacketID, Reason: protocol.ReasonUnspecifiedError})
	c.expectNone(rawQuiet) // no PUBREL
	c.disconnect(protocol.ReasonSuccess)
	c, _ = rawPersistent(t, b, "refuser", false, 60)
	c.expectNone(rawQuiet) // not sent again

	var ms [2]*rawConn
	for i := range ms {
		ms[i], _ = rawConnect(t, b, "member"+strconv.Itoa(i), nil)
		ms[i].subOK("$share/g/ea", 1)
	}
	pub.pub("ea", 1, "refused by a member")
	for deadline := time.Now().Add(rawWait); ; {
		if time.Now().After(deadline) {
			t.Fatal("no member got the message")
		}
		var got *rawConn
		var q *protocol.Publish
		for _, m := range ms {
			select {
			case in := <-m.in:
				q, _ = in.p.(*protocol.Publish)
				if q == nil {
					t.Fatalf("got %s", rawDescribe(in))
				}
				got = m
			case <-time.After(10 * time.Millisecond):
			}
			if got != nil {
				break
			}
		}
		if got == nil {
			continue
		}
		got.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: q.PacketID, Reason: protocol.ReasonImplementationSpecific})
		for _, m := range ms {
			m.expectNone(rawQuiet)
		}
		return
	}
}
