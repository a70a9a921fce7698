package actors

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/transport"
)

// testBroker starts a broker on 127.0.0.1:0 and returns its address.
func testBroker(t *testing.T, opt Options) (*Broker, string) {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b := New(opt)
	l, err := transport.ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.Serve("test", l, ServeOptions{})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return b, l.Addr().String()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// rawClient speaks MQTT with the codec over a real socket.
type rawClient struct {
	t *testing.T
	c net.Conn
	r *protocol.Reader
	v protocol.Version
}

func dial(t *testing.T, addr string, v protocol.Version) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := protocol.NewReader(c, 4096)
	r.SetMaxPacketSize(1 << 20)
	return &rawClient{t: t, c: c, r: r, v: v}
}

func (rc *rawClient) send(p protocol.Packet) {
	rc.t.Helper()
	b, err := p.Append(nil, rc.v)
	if err != nil {
		rc.t.Fatal(err)
	}
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatal(err)
	}
}

func (rc *rawClient) recv() protocol.Packet {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, body, err := rc.r.Next()
	if err != nil {
		rc.t.Fatalf("recv: %v", err)
	}
	p, err := protocol.Decode(h, append([]byte(nil), body...), rc.v)
	if err != nil {
		rc.t.Fatalf("decode: %v", err)
	}
	return p
}

func (rc *rawClient) connect(id string, clean bool) *protocol.Connack {
	rc.t.Helper()
	rc.send(&protocol.Connect{Level: rc.v, ClientID: []byte(id), CleanStart: clean, KeepAlive: 30})
	p := rc.recv()
	ca, ok := p.(*protocol.Connack)
	if !ok {
		rc.t.Fatalf("got %T, want CONNACK", p)
	}
	return ca
}

func TestPubSubRoundTrip(t *testing.T) {
	for _, v := range []protocol.Version{protocol.Version311, protocol.Version5} {
		t.Run(v.String(), func(t *testing.T) {
			_, addr := testBroker(t, TestOptions())
			sub := dial(t, addr, v)
			if ca := sub.connect("sub", true); ca.Reason != 0 {
				t.Fatalf("connack %v", ca.Reason)
			}
			sub.send(&protocol.Subscribe{PacketID: 1, Filters: []protocol.Subscription{{Filter: []byte("a/+"), QoS: 2}}})
			sa := sub.recv().(*protocol.Suback)
			if len(sa.Reasons) != 1 || sa.Reasons[0] != 2 {
				t.Fatalf("suback %v", sa.Reasons)
			}
			pub := dial(t, addr, v)
			pub.connect("pub", true)
			for q := byte(0); q <= 2; q++ {
				pub.send(&protocol.Publish{Topic: []byte("a/b"), Payload: []byte{'x', q}, QoS: q, PacketID: uint16(q)})
				switch q {
				case 1:
					if a := pub.recv().(*protocol.Ack); a.Kind != protocol.TypePuback {
						t.Fatalf("got %v", a.Kind)
					}
				case 2:
					if a := pub.recv().(*protocol.Ack); a.Kind != protocol.TypePubrec {
						t.Fatalf("got %v", a.Kind)
					}
					pub.send(&protocol.Ack{Kind: protocol.TypePubrel, PacketID: 2})
					if a := pub.recv().(*protocol.Ack); a.Kind != protocol.TypePubcomp {
						t.Fatalf("got %v", a.Kind)
					}
				}
				p, ok := sub.recv().(*protocol.Publish)
				if !ok || string(p.Topic) != "a/b" || p.QoS != q || p.Payload[1] != q {
					t.Fatalf("got %+v", p)
				}
				switch q {
				case 1:
					sub.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: p.PacketID})
				case 2:
					sub.send(&protocol.Ack{Kind: protocol.TypePubrec, PacketID: p.PacketID})
					if a := sub.recv().(*protocol.Ack); a.Kind != protocol.TypePubrel {
						t.Fatalf("got %v", a.Kind)
					}
					sub.send(&protocol.Ack{Kind: protocol.TypePubcomp, PacketID: p.PacketID})
				}
			}
		})
	}
}
