package actors

import (
	"bufio"
	"net"
	"testing"
	"time"

	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/transport"
)

// benchBroker starts a quiet broker for benchmarks.
func benchBroker(b *testing.B) string {
	b.Helper()
	opt := TestOptions()
	opt.MaxQueued = 1 << 20
	opt.MaxQueuedBytes = 1 << 30
	opt.MaxInflight = 65535
	opt.MaxOutboundBytes = 64 << 20
	br := New(opt)
	l, err := transport.ListenTCP("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	br.Serve("bench", l, ServeOptions{})
	b.Cleanup(func() { br.Shutdown(b.Context()) })
	return l.Addr().String()
}

func benchConn(b *testing.B, addr, id string, v protocol.Version) (net.Conn, *protocol.Reader) {
	b.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	buf, _ := (&protocol.Connect{Level: v, ClientID: []byte(id), CleanStart: true}).Append(nil, v)
	c.Write(buf)
	r := protocol.NewReader(c, 64<<10)
	if h, _, err := r.Next(); err != nil || h.Type != protocol.TypeConnack {
		b.Fatalf("connack: %v %v", h.Type, err)
	}
	return c, r
}

// BenchmarkEndToEnd measures publish → broker → subscribe over loopback
// TCP: one publisher streaming b.N PUBLISHes of 64 bytes, one subscriber
// reading them (acking at QoS 1). Allocations are the whole process's
// (broker and both clients) per message.
func BenchmarkEndToEnd(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run("qos"+string('0'+rune(qos)), func(b *testing.B) {
			addr := benchBroker(b)
			v := protocol.Version311
			sc, sr := benchConn(b, addr, "sub", v)
			sub, _ := (&protocol.Subscribe{PacketID: 1, Filters: []protocol.Subscription{{Filter: []byte("bench/#"), QoS: qos}}}).Append(nil, v)
			sc.Write(sub)
			if h, _, err := sr.Next(); err != nil || h.Type != protocol.TypeSuback {
				b.Fatalf("suback: %v", err)
			}
			pc, pr := benchConn(b, addr, "pub", v)
			payload := make([]byte, 64)
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			done := make(chan error, 1)
			// subscriber: read b.N messages, ack QoS 1 in batches
			go func() {
				w := bufio.NewWriterSize(sc, 64<<10)
				var ack protocol.Ack
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
					if qos > 0 {
						var p protocol.Publish
						if err := p.Decode(h, body, v); err != nil {
							done <- err
							return
						}
						ack = protocol.Ack{Kind: protocol.TypePuback, PacketID: p.PacketID}
						buf, _ = ack.Append(buf[:0], v)
						w.Write(buf)
						if sr.Buffered() == 0 {
							w.Flush()
						}
					}
				}
				w.Flush()
				done <- nil
			}()
			// publisher acks reader (QoS 1): drain PUBACKs
			if qos > 0 {
				go func() {
					for {
						if _, _, err := pr.Next(); err != nil {
							return
						}
					}
				}()
			}
			b.ResetTimer()
			start := time.Now()
			w := bufio.NewWriterSize(pc, 64<<10)
			var out []byte
			for i := 0; i < b.N; i++ {
				p := protocol.Publish{Topic: []byte("bench/t"), Payload: payload, QoS: qos}
				if qos > 0 {
					p.PacketID = uint16(i%65535) + 1
				}
				out, _ = p.Append(out[:0], v)
				w.Write(out)
			}
			w.Flush()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
