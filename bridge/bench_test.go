package bridge_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/nanoactor/nanoactor/config"
	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/supervisor"
)

func startNode(b *testing.B, doc string) *supervisor.Node {
	b.Helper()
	cfg, err := config.Parse("bench.toml", []byte(doc))
	if err != nil {
		b.Fatal(err)
	}
	n, err := supervisor.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	return n
}

func connect(b *testing.B, addr, id string) (net.Conn, *protocol.Reader) {
	b.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	v := protocol.Version5
	buf, _ := (&protocol.Connect{Level: v, ClientID: []byte(id), CleanStart: true}).Append(nil, v)
	c.Write(buf)
	r := protocol.NewReader(c, 64<<10)
	if h, _, err := r.Next(); err != nil || h.Type != protocol.TypeConnack {
		b.Fatalf("connack: %v %v", h.Type, err)
	}
	return c, r
}

const limits = `
[mqtt]
max_inflight = 65535
max_queued_messages = 1000000
max_queued_bytes = "1GiB"
receive_maximum = 65535
`

// BenchmarkBridgeQoS1 measures a message's whole way through a bridge over
// loopback TCP: publisher → local broker → bridge (outbox, remote link) →
// remote broker → subscriber, QoS 1 everywhere, 64-byte payloads, the
// publisher keeping 256 in flight. Allocations are the whole process's
// (two brokers, the bridge and both clients) per message.
func BenchmarkBridgeQoS1(b *testing.B) {
	remote := startNode(b, "[[listener]]\nname = \"r\"\nbind = \"127.0.0.1:0\"\n"+limits)
	raddr := remote.Addrs()[0].String()
	local := startNode(b, fmt.Sprintf(`[[listener]]
name = "l"
bind = "127.0.0.1:0"
[[bridge]]
name = "cloud"
url = "mqtt-tcp://%s"
proto_ver = 5
max_inflight = 1024
[[bridge.topic]]
pattern = "bench/#"
direction = "out"
qos = 1
`, raddr)+limits)
	laddr := local.Addrs()[0].String()
	deadline := time.Now().Add(10 * time.Second)
	for !local.Bridges()[0].Status().Connected && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	v := protocol.Version5
	sc, sr := connect(b, raddr, "sub")
	sub, _ := (&protocol.Subscribe{PacketID: 1, Filters: []protocol.Subscription{{Filter: []byte("bench/#"), QoS: 1}}}).Append(nil, v)
	sc.Write(sub)
	if h, _, err := sr.Next(); err != nil || h.Type != protocol.TypeSuback {
		b.Fatalf("suback: %v", err)
	}
	time.Sleep(100 * time.Millisecond) // the bridge's local subscription
	pc, pr := connect(b, laddr, "pub")
	payload := make([]byte, 64)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	done := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(sc, 64<<10)
		var p protocol.Publish
		var buf []byte
		for i := 0; i < b.N; i++ {
			sc.SetReadDeadline(time.Now().Add(30 * time.Second))
			h, body, err := sr.Next()
			if err != nil {
				done <- err
				return
			}
			if h.Type != protocol.TypePublish {
				continue
			}
			if err := p.Decode(h, body, v); err != nil {
				done <- err
				return
			}
			buf, _ = (&protocol.Ack{Kind: protocol.TypePuback, PacketID: p.PacketID}).Append(buf[:0], v)
			w.Write(buf)
			if sr.Buffered() == 0 {
				w.Flush()
			}
		}
		w.Flush()
		done <- nil
	}()
	window := make(chan struct{}, 256)
	go func() {
		for {
			h, _, err := pr.Next()
			if err != nil {
				return
			}
			if h.Type == protocol.TypePuback {
				<-window
			}
		}
	}()
	b.ResetTimer()
	w := bufio.NewWriterSize(pc, 64<<10)
	var buf []byte
	var id uint16
	for i := 0; i < b.N; i++ {
		select {
		case window <- struct{}{}:
		default:
			w.Flush()
			window <- struct{}{}
		}
		id++
		if id == 0 {
			id = 1
		}
		buf, _ = (&protocol.Publish{Topic: []byte("bench/a"), Payload: payload, QoS: 1, PacketID: id}).Append(buf[:0], v)
		w.Write(buf)
	}
	w.Flush()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
