package transport

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// transportCase is one transport under test: a listener and a client
// dialer producing the client's end as a byte stream.
type transportCase struct {
	name   string
	listen func(tb testing.TB) Listener
	dial   func(tb testing.TB, l Listener) net.Conn
}

func transportCases(tb testing.TB) []transportCase {
	pki := newPKI(tb, "ca")
	store := pki.store("server", false, 0)
	return []transportCase{
		{"tcp", func(tb testing.TB) Listener {
			l, err := ListenTCP("127.0.0.1:0")
			if err != nil {
				tb.Fatal(err)
			}
			return l
		}, func(tb testing.TB, l Listener) net.Conn { return dialTCP(tb, l.Addr()) }},
		{"tls", func(tb testing.TB) Listener { return listenTLS(tb, store.ServerConfig(), 0) },
			func(tb testing.TB, l Listener) net.Conn { return dialTLS(tb, l.Addr(), pki.clientConfig()) }},
		{"ws", func(tb testing.TB) Listener { return listenWSTest(tb, nil, 0, WSAcceptBacklog) },
			func(tb testing.TB, l Listener) net.Conn { return dialWSStream(tb, l, false, pki) }},
		{"wss", func(tb testing.TB) Listener { return listenWSTest(tb, store.ServerConfig(), 0, WSAcceptBacklog) },
			func(tb testing.TB, l Listener) net.Conn { return dialWSStream(tb, l, true, pki) }},
		{"quic", func(tb testing.TB) Listener { return listenQUICTest(tb, store.ServerConfig(), 0) },
			func(tb testing.TB, l Listener) net.Conn { return dialQUIC(tb, l, pki.clientConfig()) }},
	}
}

func dialWSStream(tb testing.TB, l Listener, secure bool, pki *testPKI) net.Conn {
	tb.Helper()
	conf := pki.clientConfig()
	if !secure {
		conf = nil
	}
	ws, _, err := dialWS(tb, l, conf, "mqtt")
	if err != nil {
		tb.Fatal(err)
	}
	return streamOf(ws)
}

// serveOne serves l with a Server running handle and cleans up after it.
func serveOne(tb testing.TB, l Listener, handle func(net.Conn)) {
	tb.Helper()
	s := &Server{Handle: noPark(func(c net.Conn) {
		if err := Handshake(c, 0); err != nil {
			tb.Errorf("handshake: %v", err)
			return
		}
		handle(c)
	})}
	served := make(chan struct{})
	go func() { _ = s.Serve(l); close(served) }()
	tb.Cleanup(func() {
		_ = s.Close()
		<-served
		s.Wait()
	})
}

// The one writer works the same on every transport: many small packets
// written through an Outbound, then a final packet and a graceful close,
// arrive complete and in order, followed by the end of the stream.
func TestOutboundOverEveryTransport(t *testing.T) {
	const n = 5000
	for _, tc := range transportCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := tc.listen(t)
			done := make(chan *Outbound, 1)
			serveOne(t, l, func(c net.Conn) {
				if _, err := io.ReadFull(c, make([]byte, 2)); err != nil { // the client speaks first
					t.Error(err)
					return
				}
				o := NewOutbound(c, Options{})
				for i := range n {
					b := binary.BigEndian.AppendUint32([]byte{0x30, 6, 0, 0}, uint32(i))
					if err := o.Enqueue(b); err != nil {
						t.Error(err)
						break
					}
				}
				_ = o.CloseAfter(ReasonClosed, nil, []byte{0xe0, 0}) // DISCONNECT
				<-o.Done()
				done <- o
			})
			c := tc.dial(t, l)
			if _, err := c.Write([]byte{0xc0, 0}); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read: %v after %d bytes", err, len(got))
			}
			c.Close() // as an MQTT client does on DISCONNECT
			var want []byte
			for i := range n {
				want = binary.BigEndian.AppendUint32(append(want, 0x30, 6, 0, 0), uint32(i))
			}
			want = append(want, 0xe0, 0)
			if !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, want %d (in order)", len(got), len(want))
			}
			o := <-done
			if o.Reason() != ReasonClosed {
				t.Errorf("reason %v", o.Reason())
			}
		})
	}
}

// A peer that never reads trips the write deadline on every transport, and
// the connection is closed with ReasonWriteTimeout, not a generic error.
func TestWriteTimeoutOverEveryTransport(t *testing.T) {
	for _, tc := range transportCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l := tc.listen(t)
			result := make(chan *Outbound, 1)
			serveOne(t, l, func(c net.Conn) {
				if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
					t.Error(err)
					return
				}
				o := NewOutbound(c, Options{WriteTimeout: 200 * time.Millisecond, MaxPending: 1 << 20})
				buf := make([]byte, 64<<10)
				deadline := time.Now().Add(5 * time.Second)
				for time.Now().Before(deadline) {
					err := o.Enqueue(bytes.Clone(buf))
					if errors.Is(err, ErrClosed) {
						break
					}
					if errors.Is(err, ErrQueueFull) {
						time.Sleep(5 * time.Millisecond)
					}
				}
				// Closing must not wait for a peer that does not read (TLS
				// close_notify would block 5s, a QUIC linger 1s).
				select {
				case <-o.Done():
				case <-time.After(3 * time.Second):
					t.Error("outbound not done 3s after its write timeout")
				}
				result <- o
			})
			c := tc.dial(t, l)
			if _, err := c.Write([]byte{0xc0, 0}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			select {
			case o := <-result:
				if o.Reason() != ReasonWriteTimeout {
					t.Errorf("reason %v (%v), want write timeout", o.Reason(), o.Err())
				}
			case <-ctx.Done():
				t.Fatal("no result")
			}
		})
	}
}
