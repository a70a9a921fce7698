package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
)

func listenQUICTest(tb testing.TB, conf *tls.Config, timeout time.Duration) Listener {
	tb.Helper()
	l, err := ListenQUIC("127.0.0.1:0", conf, timeout)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

func dialQUIC(tb testing.TB, l Listener, conf *tls.Config) net.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := DialQUIC(ctx, l.Addr().String(), conf)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// A byte stream goes through a QUIC listener and back; the server side sees
// TLS 1.3, ALPN mqtt and the verified client certificate.
func TestQUICEcho(t *testing.T) {
	pki := newPKI(t, "ca")
	l := listenQUICTest(t, pki.store("server", true, 0).ServerConfig(), 0)
	ch := echoServer(t, l)
	cert := pki.client(pkix.Name{CommonName: "quic-client", Organization: []string{"acme"}}, nil, nil)
	c := dialQUIC(t, l, pki.clientConfig(cert))
	checkEcho(t, c, 500<<10)
	h := next(t, ch)
	if h.err != nil {
		t.Fatal(h.err)
	}
	st, ok := ConnectionState(h.c)
	if !ok || st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != QUICALPN {
		t.Errorf("ConnectionState = %s %q %v", tls.VersionName(st.Version), st.NegotiatedProtocol, ok)
	}
	if id, ok := PeerIdentity(h.c, IdentityDN); !ok || id != "CN=quic-client,O=acme" {
		t.Errorf("PeerIdentity = %q, %v", id, ok)
	}
	if _, ok := h.c.RemoteAddr().(*net.UDPAddr); !ok {
		t.Errorf("RemoteAddr %T", h.c.RemoteAddr())
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
	if _, ok := ConnectionState(c); !ok {
		t.Error("client ConnectionState not ok")
	}

	// Without a client certificate the handshake fails.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := DialQUIC(ctx, l.Addr().String(), pki.clientConfig()); err == nil {
		_, _ = c.Write([]byte{0xc0, 0})
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 2))
		c.Close()
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("client without a certificate: read = %v", err)
		}
	}
}

// A client that completes the QUIC handshake but never opens a stream does
// not hold up another; it is closed once the handshake timeout passes.
func TestQUICNoStream(t *testing.T) {
	const timeout = 400 * time.Millisecond
	pki := newPKI(t, "ca")
	l := listenQUICTest(t, pki.store("server", false, 0).ServerConfig(), timeout)
	ch := echoServer(t, l)

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conf := pki.clientConfig()
	conf.NextProtos = []string{QUICALPN}
	idle, err := quic.DialAddr(ctx, l.Addr().String(), conf, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.CloseWithError(0, "")

	good := dialQUIC(t, l, pki.clientConfig())
	checkEcho(t, good, 100)
	if d := time.Since(start); d > timeout/2 {
		t.Errorf("good client took %v behind an idle one", d)
	}
	select {
	case <-idle.Context().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("idle QUIC connection not closed")
	}
	if d := time.Since(start); d < timeout*3/4 {
		t.Errorf("idle connection closed after %v, before the %v timeout", d, timeout)
	}
	var ae *quic.ApplicationError
	if err := context.Cause(idle.Context()); !errors.As(err, &ae) || ae.ErrorCode != quicCodeNoStream {
		t.Errorf("idle connection closed with %v, want application error %d", err, quicCodeNoStream)
	}
	var timeouts int
	for range 2 {
		if h := next(t, ch); errors.Is(h.err, os.ErrDeadlineExceeded) {
			timeouts++
		}
	}
	if timeouts != 1 {
		t.Errorf("%d handshakes timed out, want 1", timeouts)
	}
}

// Data written before Close reaches the peer (Close lingers for it), and
// the peer then reads EOF.
func TestQUICCloseDelivers(t *testing.T) {
	pki := newPKI(t, "ca")
	l := listenQUICTest(t, pki.store("server", false, 0).ServerConfig(), 0)
	want := make([]byte, 2<<20)
	_, _ = rand.Read(want)
	s := &Server{Handle: noPark(func(c net.Conn) {
		if Handshake(c, 0) != nil {
			return
		}
		if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
			return
		}
		_, _ = c.Write(want)
		// Server closes c.
	})}
	go func() { _ = s.Serve(l) }()
	defer s.Wait()
	defer s.Close()

	c := dialQUIC(t, l, pki.clientConfig())
	if _, err := c.Write([]byte{0xc0, 0}); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v after %d bytes", err, len(got))
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d", len(got), len(want))
	}
	c.Close() // ends the server's linger at once
}

// Closing the listener refuses new connections and leaves accepted ones
// working; deadlines work on the stream.
func TestQUICListenerClose(t *testing.T) {
	pki := newPKI(t, "ca")
	l, err := ListenQUIC("127.0.0.1:0", pki.store("server", false, 0).ServerConfig(), 0)
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c := dialQUIC(t, l, pki.clientConfig())
	if _, err := c.Write([]byte{0xc0, 0}); err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	if srv == nil {
		t.FailNow()
	}
	defer srv.Close()
	if err := Handshake(srv, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(srv, make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
	_ = srv.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	if _, err := srv.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Read past deadline = %v", err)
	}
	_ = srv.SetReadDeadline(time.Time{})

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if c2, err := DialQUIC(ctx, l.Addr().String(), pki.clientConfig()); err == nil {
		c2.Close()
		t.Error("dial after listener Close succeeded")
	}
	go func() { _, _ = io.Copy(srv, srv) }()
	checkEcho(t, c, 10<<10)
}

// A client that does not speak ALPN mqtt is refused in the handshake.
func TestQUICALPN(t *testing.T) {
	pki := newPKI(t, "ca")
	l := listenQUICTest(t, pki.store("server", false, 0).ServerConfig(), 0)
	conf := pki.clientConfig()
	conf.NextProtos = []string{"h3"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if c, err := DialQUIC(ctx, l.Addr().String(), conf); err == nil {
		c.Close()
		t.Fatal("h3 client accepted")
	}
}
