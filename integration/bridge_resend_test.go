package integration

import (
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/nanoactor/nanoactor/protocol"
)

// fakeRemote is a hand-driven MQTT server: the test accepts the bridge's
// connections and answers packet by packet.
type fakeRemote struct {
	t *testing.T
	l net.Listener
}

func startFakeRemote(t *testing.T) *fakeRemote {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return &fakeRemote{t: t, l: l}
}

type fakeConn struct {
	t  *testing.T
	nc net.Conn
	r  *protocol.Reader
	v  protocol.Version
}

// accept takes the bridge's next connection and answers its CONNECT with
// a CONNACK carrying sessionPresent.
func (f *fakeRemote) accept(sessionPresent bool) *fakeConn {
	f.t.Helper()
	f.l.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	nc, err := f.l.Accept()
	if err != nil {
		f.t.Fatalf("the bridge did not connect: %v", err)
	}
	f.t.Cleanup(func() { nc.Close() })
	c := &fakeConn{t: f.t, nc: nc, r: protocol.NewReader(nc, 64<<10), v: protocol.Version5}
	cp, ok := c.next().(*protocol.Connect)
	if !ok {
		f.t.Fatalf("first packet is not CONNECT")
	}
	c.v = cp.Level
	c.send(&protocol.Connack{SessionPresent: sessionPresent})
	return c
}

func (c *fakeConn) send(p protocol.Packet) {
	c.t.Helper()
	buf, err := p.Append(nil, c.v)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.nc.Write(buf); err != nil {
		c.t.Fatal(err)
	}
}

func (c *fakeConn) next() protocol.Packet {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, body, err := c.r.Next()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	p, err := protocol.Decode(h, append([]byte(nil), body...), c.v)
	if err != nil {
		c.t.Fatalf("decode %v: %v", h.Type, err)
	}
	return p
}

// nextPublishOrAck skips SUBSCRIBE and PINGREQ and returns the next
// PUBLISH or ack.
func (c *fakeConn) nextPublishOrAck() protocol.Packet {
	c.t.Helper()
	for {
		switch p := c.next().(type) {
		case *protocol.Subscribe:
			rs := make([]protocol.ReasonCode, len(p.Filters))
			c.send(&protocol.Suback{PacketID: p.PacketID, Reasons: rs})
		case *protocol.Pingreq:
			c.send(&protocol.Pingresp{})
		default:
			return p
		}
	}
}

// TestBridgeResendsAtOnce: after a reconnect to a session the remote kept,
// the bridge resends, before anything new and without waiting for new
// traffic, the PUBLISH the remote never acknowledged (DUP, same packet
// identifier) and the PUBREL of the one the remote had PUBREC'd — the two
// mistakes users of other bridges hit.
func TestBridgeResendsAtOnce(t *testing.T) {
	for _, ver := range []int{4, 5} {
		fr := startFakeRemote(t)
		local := startBroker(t, bridgeTOML("cloud", "mqtt-tcp://"+fr.l.Addr().String(), ver, "",
			"pattern = \"a/#\"\ndirection = \"out\"\nqos = 2"))
		c := fr.accept(false)
		lp := v5Simple(t, local, "lp")
		time.Sleep(100 * time.Millisecond) // the bridge's local subscription
		lp.pub(&paho.Publish{Topic: "a/1", QoS: 2, Payload: []byte("one")})
		lp.pub(&paho.Publish{Topic: "a/2", QoS: 2, Payload: []byte("two")})
		p1, ok := c.nextPublishOrAck().(*protocol.Publish)
		if !ok || string(p1.Payload) != "one" || p1.Dup {
			t.Fatalf("v%d: first: %+v", ver, p1)
		}
		p2, ok := c.nextPublishOrAck().(*protocol.Publish)
		if !ok || string(p2.Payload) != "two" {
			t.Fatalf("v%d: second: %+v", ver, p2)
		}
		// PUBREC the first only, then the link dies.
		c.send(&protocol.Ack{Kind: protocol.TypePubrec, PacketID: p1.PacketID})
		if a, ok := c.nextPublishOrAck().(*protocol.Ack); !ok || a.Kind != protocol.TypePubrel || a.PacketID != p1.PacketID {
			t.Fatalf("v%d: want PUBREL %d, got %v", ver, p1.PacketID, a)
		}
		c.nc.Close()

		c = fr.accept(true)
		// At once, in order: PUBREL for the first, DUP PUBLISH for the
		// second with its identifier.
		if a, ok := c.nextPublishOrAck().(*protocol.Ack); !ok || a.Kind != protocol.TypePubrel || a.PacketID != p1.PacketID {
			t.Fatalf("v%d: after reconnect want PUBREL %d first, got %v", ver, p1.PacketID, a)
		}
		r2, ok := c.nextPublishOrAck().(*protocol.Publish)
		if !ok || !r2.Dup || r2.PacketID != p2.PacketID || string(r2.Payload) != "two" {
			t.Fatalf("v%d: want DUP PUBLISH %d, got %+v", ver, p2.PacketID, r2)
		}
		c.send(&protocol.Ack{Kind: protocol.TypePubcomp, PacketID: p1.PacketID})
		c.send(&protocol.Ack{Kind: protocol.TypePubrec, PacketID: p2.PacketID})
		if a, ok := c.nextPublishOrAck().(*protocol.Ack); !ok || a.Kind != protocol.TypePubrel || a.PacketID != p2.PacketID {
			t.Fatalf("v%d: want PUBREL %d, got %v", ver, p2.PacketID, a)
		}
		c.send(&protocol.Ack{Kind: protocol.TypePubcomp, PacketID: p2.PacketID})
		br := local.node.Bridges()[0]
		eventually(t, 5*time.Second, "the outbox empty", func() bool { return br.Status().Outbox == 0 })
		if st := br.Status(); st.Acked != 2 || st.Dropped != 0 {
			t.Fatalf("v%d: status %+v", ver, st)
		}
	}
}
