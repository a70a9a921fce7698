package transport

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// noDelayOf reads TCP_NODELAY of an accepted connection's socket.
func noDelayOf(t *testing.T, c net.Conn) bool {
	t.Helper()
	if tc, ok := c.(*tlsConn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		t.Fatalf("%T has no socket", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	return v != 0
}

// TestSetNoDelay: TCP and TLS listeners accept with TCP_NODELAY, and
// without it after SetNoDelay(l, false); a WebSocket listener passes the
// setting to its socket; QUIC has none.
func TestSetNoDelay(t *testing.T) {
	pki := newPKI(t, "ca")
	for _, tc := range []struct {
		name   string
		listen func() Listener
		dial   func(net.Addr) net.Conn
	}{
		{"tcp", func() Listener {
			l, err := ListenTCP("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			return l
		}, func(a net.Addr) net.Conn { return dialTCP(t, a) }},
		{"tls", func() Listener { return listenTLS(t, pki.store("server", false, 0).ServerConfig(), 0) },
			func(a net.Addr) net.Conn { return dialTCP(t, a) }}, // the handshake does not matter here
	} {
		for _, on := range []bool{true, false} {
			l := tc.listen()
			if !on {
				if err := SetNoDelay(l, false); err != nil {
					t.Fatal(err)
				}
			}
			tc.dial(l.Addr())
			c, err := l.Accept()
			if err != nil {
				t.Fatal(err)
			}
			if got := noDelayOf(t, c); got != on {
				t.Errorf("%s: TCP_NODELAY = %v, want %v", tc.name, got, on)
			}
			c.Close()
			l.Close()
		}
	}

	ws, err := ListenWS("127.0.0.1:0", "/mqtt", nil, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := SetNoDelay(ws, false); err != nil {
		t.Fatal(err)
	}
	if !ws.(*wsListener).tcp.(*tcpListener).nagle.Load() {
		t.Error("ws: SetNoDelay(false) did not reach the socket listener")
	}
	q, err := ListenQUIC("127.0.0.1:0", pki.store("server", false, 0).ServerConfig(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if SetNoDelay(q, false) == nil {
		t.Error("quic: SetNoDelay succeeded")
	}
}
