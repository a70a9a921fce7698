package integration

import (
	"strconv"
	"testing"
	"time"

	"github.com/nanoactor/nanoactor/protocol"
)

// MQTT 5.0 sessions: Clean Start, Session Expiry, Session Present,
// takeover, offline queues, redelivery, the exactly-once receive state,
// wills and the session queue limit.

// TestV5SessionPresent: Clean Start 0 resumes a session and says so
// [MQTT-3.2.2-3] [MQTT-3.1.2-5], its subscriptions still working; Clean
// Start 1 discards it [MQTT-3.1.2-4] and says Session Present 0
// [MQTT-3.2.2-2]; Clean Start 0 without a session creates one, Present 0
// [MQTT-3.1.2-6].
func TestV5SessionPresent(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	pub, _ := rawConnect(t, b, "pub", nil)

	c, ack := rawPersistent(t, b, "s", false, 60)
	if ack.SessionPresent {
		t.Fatal("Session Present 1 for a client id never seen")
	}
	c.subOK("sp/#", 1)
	c.disconnect(protocol.ReasonSuccess)

	c, ack = rawPersistent(t, b, "s", false, 60)
	if !ack.SessionPresent {
		t.Fatal("Session Present 0 when resuming a session with a subscription")
	}
	pub.pub("sp/1", 1, "resumed")
	if m, _ := c.recv(); string(m.Payload) != "resumed" {
		t.Fatalf("got %q", m.Payload)
	}
	c.disconnect(protocol.ReasonSuccess)

	c, ack = rawPersistent(t, b, "s", true, 60)
	if ack.SessionPresent {
		t.Fatal("Session Present 1 with Clean Start 1")
	}
	pub.pub("sp/2", 1, "after clean start")
	c.expectNone(rawQuiet) // the subscription went with the old session
}

// TestV5SessionPresentEmptySession: a session with no subscriptions and
// nothing queued is still a session: "the existence of a Session, even if
// the rest of the Session State is empty" is Session State (4.1), so
// resuming it says Session Present 1 [MQTT-3.2.2-3].
func TestV5SessionPresentEmptySession(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	c, _ := rawPersistent(t, b, "empty", false, 60)
	c.disconnect(protocol.ReasonSuccess)
	_, ack := rawPersistent(t, b, "empty", false, 60)
	if !ack.SessionPresent {
		t.Fatal("Session Present 0 when resuming an existing (empty) session within its expiry [MQTT-3.2.2-3]")
	}
}

// TestV5SessionExpiry: a session outlives its connection for the Session
// Expiry Interval and then ends [MQTT-3.1.2-23] [MQTT-4.1.0-2]; absent, it
// ends with the connection (3.1.2.11.2); a DISCONNECT may shorten it to 0
// (3.14.2.2.2), but setting a non-zero one after CONNECT said 0 is a
// Protocol Error (DISCONNECT 0x82).
func TestV5SessionExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	subscribe := func(id string, expiry uint32, set bool) *rawConn {
		c, _ := rawConnect(t, b, id, func(cp *protocol.Connect) {
			if set {
				cp.Props.SessionExpiry = expiry
				cp.Props.Set(protocol.PropSessionExpiry)
			}
		})
		c.subOK("se/"+id, 1)
		return c
	}
	resume := func(id string) *protocol.Connack {
		_, ack := rawPersistent(t, b, id, false, 60)
		return ack
	}

	short := subscribe("short", 1, true)
	short.disconnect(protocol.ReasonSuccess)
	none := subscribe("none", 0, false)
	none.disconnect(protocol.ReasonSuccess)
	zeroed := subscribe("zeroed", 60, true)
	d := &protocol.Disconnect{}
	d.Props.SessionExpiry = 0
	d.Props.Set(protocol.PropSessionExpiry)
	zeroed.send(d)
	zeroed.drop()
	// A new connection's CONNECT is not ordered after what the old socket
	// still holds: wait until the broker has read each DISCONNECT.
	for _, c := range []*rawConn{short, none, zeroed} {
		rawGone(t, b, c)
	}

	if ack := resume("none"); ack.SessionPresent {
		t.Error("session without Session Expiry Interval survived its connection")
	}
	if ack := resume("zeroed"); ack.SessionPresent {
		t.Error("session survived a DISCONNECT setting Session Expiry Interval 0")
	}
	time.Sleep(1500 * time.Millisecond)
	if ack := resume("short"); ack.SessionPresent {
		t.Error("session with Session Expiry Interval 1 present after 1.5 s")
	}

	t.Run("non-zero expiry on DISCONNECT after 0 on CONNECT", func(t *testing.T) {
		c, _ := rawConnect(t, b, "sneaky", nil)
		d := &protocol.Disconnect{}
		d.Props.SessionExpiry = 60
		d.Props.Set(protocol.PropSessionExpiry)
		c.send(d)
		c.expectDisconnect(protocol.ReasonProtocolError)
	})
}

// TestV5SessionExpiryKeepsMessages: within the expiry, the session keeps
// the subscription and queues for the offline client [MQTT-3.1.2-23]
// [MQTT-4.5.0-1].
func TestV5SessionExpiryKeepsMessages(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	c, _ := rawPersistent(t, b, "s", true, 2)
	c.subOK("sek/#", 1)
	c.drop()
	rawGone(t, b, c)
	pub, _ := rawConnect(t, b, "pub", nil)
	pub.pub("sek/1", 1, "while away")
	time.Sleep(500 * time.Millisecond)
	c, ack := rawPersistent(t, b, "s", false, 2)
	if !ack.SessionPresent {
		t.Fatal("session with Session Expiry Interval 2 gone after 0.5 s")
	}
	if m, _ := c.recv(); string(m.Payload) != "while away" {
		t.Fatalf("got %q", m.Payload)
	}
}

// TestV5SessionTakeover: a second connection with a live client id makes
// the broker send the old one DISCONNECT 0x8E and close it [MQTT-3.1.4-3];
// with Clean Start 0 the new connection inherits the session and its
// subscriptions [MQTT-3.1.2-5]; with Clean Start 1 it starts afresh
// [MQTT-3.1.2-4].
func TestV5SessionTakeover(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	pub, _ := rawConnect(t, b, "pub", nil)

	old, _ := rawPersistent(t, b, "tk", false, 60)
	old.subOK("tk/#", 1)
	nu, ack := rawPersistent(t, b, "tk", false, 60)
	old.expectDisconnect(protocol.ReasonSessionTakenOver)
	if !ack.SessionPresent {
		t.Fatal("taking over with Clean Start 0: Session Present 0")
	}
	pub.pub("tk/1", 1, "to the new connection")
	if m, _ := nu.recv(); string(m.Payload) != "to the new connection" {
		t.Fatalf("got %q", m.Payload)
	}
	nu.expectNone(rawQuiet)

	old2, _ := rawPersistent(t, b, "tk2", false, 60)
	old2.subOK("tk2/#", 1)
	nu2, ack := rawPersistent(t, b, "tk2", true, 60)
	old2.expectDisconnect(protocol.ReasonSessionTakenOver)
	if ack.SessionPresent {
		t.Fatal("taking over with Clean Start 1: Session Present 1")
	}
	pub.pub("tk2/1", 1, "nobody")
	nu2.expectNone(rawQuiet)
}

// TestV5SessionOfflineQueue: QoS 1 and 2 messages for an offline
// persistent session are queued [MQTT-4.5.0-1] and delivered on reconnect,
// in the order published [MQTT-4.6.0-6], at their QoS; QoS 0 messages are
// not queued (queue_qos0_messages = false, the default).
func TestV5SessionOfflineQueue(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	c, _ := rawPersistent(t, b, "s", true, 60)
	c.subOK("oq/#", 2)
	c.disconnect(protocol.ReasonSuccess)
	rawGone(t, b, c)
	pub, _ := rawConnect(t, b, "pub", nil)
	for i := range 10 {
		pub.pub("oq/t", byte(1+i%2), strconv.Itoa(i))
		if i == 4 {
			pub.pub("oq/t", 0, "qos0")
		}
	}
	c, ack := rawPersistent(t, b, "s", false, 60)
	if !ack.SessionPresent {
		t.Fatal("Session Present 0")
	}
	for i, m := range c.collect(10) {
		if string(m.p.Payload) != strconv.Itoa(i) || m.p.QoS != byte(1+i%2) {
			t.Fatalf("message %d: %q at QoS %d, want %d at QoS %d", i, m.p.Payload, m.p.QoS, i, 1+i%2)
		}
	}
	c.expectNone(rawQuiet)
}

// TestV5SessionRedelivery: unacknowledged QoS 1 and 2 PUBLISHes are sent
// again on reconnect with Clean Start 0, first, in order, with DUP 1 and
// their original packet ids [MQTT-4.4.0-1] [MQTT-3.3.1-1] [MQTT-4.6.0-1];
// a PUBREL awaiting PUBCOMP is sent again, not the PUBLISH [MQTT-4.3.3-6];
// once acknowledged nothing comes again.
func TestV5SessionRedelivery(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	c, _ := rawPersistent(t, b, "s", true, 60)
	c.subOK("rd/#", 2)
	pub, _ := rawConnect(t, b, "pub", nil)
	pub.pub("rd/t", 1, "a")
	pub.pub("rd/t", 1, "b")
	pub.pub("rd/t", 2, "c")
	pub.pub("rd/t", 2, "d")
	var ids []uint16
	for _, want := range []string{"a", "b", "c", "d"} {
		p, h := c.nextPublish()
		if string(p.Payload) != want || h.Dup() {
			t.Fatalf("got %q dup %v, want %q dup false", p.Payload, h.Dup(), want)
		}
		ids = append(ids, p.PacketID)
	}
	// "d" gets as far as PUBREL; nothing else is acknowledged.
	c.send(&protocol.Ack{Kind: protocol.TypePubrec, PacketID: ids[3]})
	c.nextAck(protocol.TypePubrel, ids[3])
	c.drop()

	c, ack := rawPersistent(t, b, "s", false, 60)
	if !ack.SessionPresent {
		t.Fatal("Session Present 0")
	}
	for i, want := range []string{"a", "b", "c"} {
		p, h := c.nextPublish()
		if string(p.Payload) != want || !h.Dup() || p.PacketID != ids[i] {
			t.Fatalf("redelivered %q dup %v id %d, want %q dup true id %d", p.Payload, h.Dup(), p.PacketID, want, ids[i])
		}
	}
	c.nextAck(protocol.TypePubrel, ids[3])
	c.expectNone(rawQuiet)
	c.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: ids[0]})
	c.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: ids[1]})
	c.send(&protocol.Ack{Kind: protocol.TypePubrec, PacketID: ids[2]})
	c.nextAck(protocol.TypePubrel, ids[2])
	c.send(&protocol.Ack{Kind: protocol.TypePubcomp, PacketID: ids[2]})
	c.send(&protocol.Ack{Kind: protocol.TypePubcomp, PacketID: ids[3]})
	c.expectNone(rawQuiet)
	c.disconnect(protocol.ReasonSuccess)

	c, _ = rawPersistent(t, b, "s", false, 60)
	c.expectNone(rawQuiet) // everything was acknowledged: nothing to resend
}

// TestV5SessionQoS2ReceiveState: the broker's exactly-once receive state
// is session state. A QoS 2 PUBLISH acknowledged with PUBREC, resent with
// DUP on a new connection, is acknowledged again and not delivered twice
// [MQTT-4.3.3-10]; PUBREL then completes it [MQTT-4.3.3-11]; afterwards the
// packet id names a new message [MQTT-4.3.3-12].
func TestV5SessionQoS2ReceiveState(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	sub, _ := rawConnect(t, b, "sub", nil)
	sub.subOK("q2/#", 2)
	pub, _ := rawPersistent(t, b, "pub", true, 60)
	pub.send(&protocol.Publish{Topic: []byte("q2/t"), QoS: 2, PacketID: 7, Payload: []byte("once")})
	pub.nextAck(protocol.TypePubrec, 7)
	pub.drop()

	pub, ack := rawPersistent(t, b, "pub", false, 60)
	if !ack.SessionPresent {
		t.Fatal("Session Present 0 although a QoS 2 exchange is open")
	}
	pub.send(&protocol.Publish{Topic: []byte("q2/t"), QoS: 2, PacketID: 7, Dup: true, Payload: []byte("once")})
	pub.nextAck(protocol.TypePubrec, 7)
	if m, _ := sub.recv(); string(m.Payload) != "once" {
		t.Fatalf("got %q", m.Payload)
	}
	sub.expectNone(rawQuiet)
	pub.send(&protocol.Ack{Kind: protocol.TypePubrel, PacketID: 7})
	if a := pub.nextAck(protocol.TypePubcomp, 7); a.Reason != protocol.ReasonSuccess {
		t.Fatalf("PUBCOMP reason %#x, want Success", byte(a.Reason))
	}
	pub.pubPacket(&protocol.Publish{Topic: []byte("q2/t"), QoS: 2, PacketID: 7, Payload: []byte("twice")})
	if m, _ := sub.recv(); string(m.Payload) != "twice" {
		t.Fatalf("got %q", m.Payload)
	}
}

// TestV5PubrelUnknownID: a PUBREL for a packet id the broker does not
// hold is answered with PUBCOMP [MQTT-4.3.3-11], reason 0x92 Packet
// Identifier not found (3.7.2.1), and the connection stays.
func TestV5PubrelUnknownID(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	c, _ := rawConnect(t, b, "c", nil)
	c.send(&protocol.Ack{Kind: protocol.TypePubrel, PacketID: 42})
	if a := c.nextAck(protocol.TypePubcomp, 42); a.Reason != protocol.ReasonPacketIdentifierNotFound {
		t.Fatalf("PUBCOMP reason %#x, want 0x92", byte(a.Reason))
	}
	c.subOK("still/here", 0)
}

// rawWillConnect connects id with a will on topic (QoS 1, payload "gone")
// and whatever else mod sets.
func rawWillConnect(t *testing.T, b *broker, id, topic string, mod func(*protocol.Connect)) *rawConn {
	t.Helper()
	c, _ := rawConnect(t, b, id, func(cp *protocol.Connect) {
		cp.WillFlag = true
		cp.Will = protocol.Will{QoS: 1, Topic: []byte(topic), Payload: []byte("gone " + id)}
		if mod != nil {
			mod(cp)
		}
	})
	return c
}

func rawWillDelay(secs uint32, expiry uint32) func(*protocol.Connect) {
	return func(cp *protocol.Connect) {
		cp.Will.Props.WillDelay = secs
		cp.Will.Props.Set(protocol.PropWillDelay)
		cp.Props.SessionExpiry = expiry
		cp.Props.Set(protocol.PropSessionExpiry)
	}
}

// TestV5Will covers the Will Message [MQTT-3.1.2-8]: published when the
// connection closes without DISCONNECT, with its properties
// [MQTT-3.1.3-10]; not after a normal DISCONNECT [MQTT-3.14.4-3]
// [MQTT-3.1.2-10]; published after DISCONNECT 0x04; delayed by the Will
// Delay Interval (3.1.3.2.2) unless the client reconnects first
// [MQTT-3.1.3-9], or sent when the session ends if that is earlier;
// published as retained when Will Retain is 1 [MQTT-3.1.2-15]; and
// published when the keepalive runs out [MQTT-3.1.2-22].
func TestV5Will(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "")
	watch := func(t *testing.T, topic string) *rawConn {
		w, _ := rawConnect(t, b, "watch-"+topic, nil)
		w.subOK(topic, 1)
		return w
	}
	wantWill := func(t *testing.T, w *rawConn, id string) {
		t.Helper()
		m, h := w.recv()
		if string(m.Payload) != "gone "+id || m.QoS != 1 || h.Retain() {
			t.Fatalf("will: got %q QoS %d RETAIN %v, want %q QoS 1 RETAIN 0", m.Payload, m.QoS, h.Retain(), "gone "+id)
		}
	}

	t.Run("abnormal close", func(t *testing.T) {
		t.Parallel()
		w := watch(t, "will/abnormal")
		c := rawWillConnect(t, b, "abnormal", "will/abnormal", func(cp *protocol.Connect) {
			cp.Will.Props.ContentType = []byte("text/plain")
			cp.Will.Props.Set(protocol.PropContentType)
			cp.Will.Props.User = []protocol.UserProperty{{Key: []byte("k"), Value: []byte("v")}}
		})
		c.drop()
		m, _ := w.nextPublish()
		if string(m.Payload) != "gone abnormal" || string(m.Props.ContentType) != "text/plain" ||
			len(m.Props.User) != 1 || string(m.Props.User[0].Key) != "k" || string(m.Props.User[0].Value) != "v" {
			t.Fatalf("will %q content type %q user %v", m.Payload, m.Props.ContentType, m.Props.User)
		}
	})
	t.Run("normal disconnect", func(t *testing.T) {
		t.Parallel()
		w := watch(t, "will/normal")
		c := rawWillConnect(t, b, "normal", "will/normal", nil)
		c.disconnect(protocol.ReasonSuccess)
		w.expectNone(700 * time.Millisecond)
	})
	t.Run("disconnect with will message", func(t *testing.T) {
		t.Parallel()
		w := watch(t, "will/0x04")
		c := rawWillConnect(t, b, "with-will", "will/0x04", nil)
		c.disconnect(protocol.ReasonDisconnectWithWill)
		wantWill(t, w, "with-will")
	})
	t.Run("will delay", func(t *testing.T) {
		t.Parallel()
		w := watch(t, "will/delay")
		c := rawWillConnect(t, b, "delay", "will/delay", rawWillDelay(1, 60))
		c.drop()
		start := time.Now()
		w.expectNone(600 * time.Millisecond)
		wantWill(t, w, "delay")
		if el := time.Since(start); el < 900*time.Millisecond {
			t.Fatalf("will with a 1 s delay published after %v", el)
		}
	})
	t.Run("will delay cancelled by reconnect", func(t *testing.T) {
		t.Parallel()
		w := watch(t, "will/cancel")
		c := rawWillConnect(t, b, "cancel", "will/cancel", rawWillDelay(2, 60))
		c.drop()
		// Reconnect once the broker has seen the drop (not a takeover).
		eventually(t, rawWait, "the broker to see the drop", func() bool {
			return b.logs.Count(`"remote":"`+c.local()+`"`, "connection closed") == 1
		})
		rawPersistent(t, b, "cancel", false, 60)
		w.expectNone(2500 * time.Millisecond)
	})
	t.Run("session ends before the will delay", func(t *testing.T) {
		t.Parallel()
		w := watch(t, "will/expiry")
		c := rawWillConnect(t, b, "expiry", "will/expiry", rawWillDelay(30, 1))
		c.drop()
		wantWill(t, w, "expiry") // at session end, ~1 s, not after 30 s
	})
	t.Run("will retain", func(t *testing.T) {
		t.Parallel()
		c := rawWillConnect(t, b, "retain", "will/retain", func(cp *protocol.Connect) { cp.Will.Retain = true })
		w := watch(t, "will/retain")
		c.drop()
		wantWill(t, w, "retain") // to the existing subscription: RETAIN 0 [MQTT-3.3.1-12]
		late, _ := rawConnect(t, b, "late", nil)
		late.subOK("will/retain", 1)
		if m, h := late.recv(); string(m.Payload) != "gone retain" || !h.Retain() {
			t.Fatalf("retained will: %q RETAIN %v", m.Payload, h.Retain())
		}
	})
	t.Run("keepalive timeout", func(t *testing.T) {
		t.Parallel()
		w := watch(t, "will/keepalive")
		c := rawWillConnect(t, b, "silent", "will/keepalive", func(cp *protocol.Connect) { cp.KeepAlive = 1 })
		start := time.Now()
		// The client goes silent; 1.5 times the keepalive later the broker
		// closes the connection (0x8D is allowed first) and publishes.
		rawClosedMaybeDisconnect(t, c, protocol.ReasonKeepAliveTimeout)
		if el := time.Since(start); el < time.Second {
			t.Fatalf("closed after %v, inside the 1 s keepalive", el)
		}
		wantWill(t, w, "silent")
		if el := time.Since(start); el > 1500*time.Millisecond+3*time.Second {
			t.Fatalf("will after %v", el)
		}
	})
}

// TestV5SessionQueueLimit: past max_queued_messages a message for an
// offline session is dropped (the newest, by the documented policy), the
// drop is logged, and the queued ones are delivered in order.
func TestV5SessionQueueLimit(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "[mqtt]\nmax_queued_messages = 3\n")
	c, _ := rawPersistent(t, b, "small", true, 60)
	c.subOK("ql/#", 1)
	c.disconnect(protocol.ReasonSuccess)
	rawGone(t, b, c)
	pub, _ := rawConnect(t, b, "pub", nil)
	for i := range 6 {
		pub.pub("ql/t", 1, strconv.Itoa(i))
	}
	eventually(t, rawWait, "a log line about the dropped message", func() bool {
		return b.logs.Count(`"client":"small"`, "dropped", `"reason":`) >= 1
	})
	c, _ = rawPersistent(t, b, "small", false, 60)
	for i, m := range c.collect(3) {
		if string(m.p.Payload) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, m.p.Payload)
		}
	}
	c.expectNone(rawQuiet)
}
