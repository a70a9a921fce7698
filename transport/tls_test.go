package transport

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func listenTLS(tb testing.TB, conf *tls.Config, timeout time.Duration) Listener {
	tb.Helper()
	l, err := ListenTLS("127.0.0.1:0", conf, timeout)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

func dialTLS(tb testing.TB, addr net.Addr, conf *tls.Config) *tls.Conn {
	tb.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr.String(), conf)
	if err != nil {
		tb.Fatalf("tls dial: %v", err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// A byte stream goes through a TLS listener and back, and the server side
// sees the TLS state.
func TestTLSEcho(t *testing.T) {
	pki := newPKI(t, "ca")
	l := listenTLS(t, pki.store("server", false, 0).ServerConfig(), 0)
	ch := echoServer(t, l)

	c := dialTLS(t, l.Addr(), pki.clientConfig())
	checkEcho(t, c, 200<<10)
	h := next(t, ch)
	if h.err != nil {
		t.Fatal(h.err)
	}
	st, ok := ConnectionState(h.c)
	if !ok || st.Version != tls.VersionTLS13 {
		t.Errorf("ConnectionState = %v, %v; want TLS 1.3", tls.VersionName(st.Version), ok)
	}
	if _, ok := PeerIdentity(h.c, IdentityCN); ok {
		t.Error("PeerIdentity without a client certificate reported one")
	}
}

// Clients that stall before or inside the handshake, or send garbage, never
// hold up the listener: a good client behind them handshakes at once, and
// each bad one is closed once the handshake timeout passes.
func TestTLSStalledClientsDoNotBlock(t *testing.T) {
	const timeout = 600 * time.Millisecond
	pki := newPKI(t, "ca")
	l := listenTLS(t, pki.store("server", false, 0).ServerConfig(), timeout)
	ch := echoServer(t, l)

	start := time.Now()
	silent := dialTCP(t, l.Addr())
	partial := dialTCP(t, l.Addr()) // a record header promising 16 KiB, then nothing
	if _, err := partial.Write([]byte{0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00}); err != nil {
		t.Fatal(err)
	}
	garbage := dialTCP(t, l.Addr()) // not TLS at all: refused at once
	if _, err := garbage.Write([]byte("CONNECT\r\n\r\nthis is not a client hello")); err != nil {
		t.Fatal(err)
	}

	good := dialTLS(t, l.Addr(), pki.clientConfig())
	if d := time.Since(start); d >= timeout/2 {
		t.Fatalf("good client took %v to handshake behind stalled ones (timeout %v)", d, timeout)
	}
	checkEcho(t, good, 1<<10)

	waitClosed(t, garbage, timeout/2)
	waitClosed(t, silent, 5*time.Second)
	waitClosed(t, partial, 5*time.Second)
	if d := time.Since(start); d < timeout*3/4 {
		t.Errorf("stalled clients closed after %v, before the %v handshake timeout", d, timeout)
	}
	var timeouts int
	for range 4 {
		h := next(t, ch)
		if errors.Is(h.err, os.ErrDeadlineExceeded) {
			timeouts++
		}
	}
	if timeouts != 2 {
		t.Errorf("%d handshakes timed out, want 2", timeouts)
	}
}

func dialTCP(tb testing.TB, addr net.Addr) net.Conn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// Handshake with an explicit timeout overrides the accept-time deadline,
// and on success clears the deadlines: a connection may idle past the
// handshake timeout.
func TestTLSHandshakeClearsDeadline(t *testing.T) {
	const timeout = 200 * time.Millisecond
	pki := newPKI(t, "ca")
	l := listenTLS(t, pki.store("server", false, 0).ServerConfig(), timeout)
	ch := echoServer(t, l)
	c := dialTLS(t, l.Addr(), pki.clientConfig())
	if h := next(t, ch); h.err != nil {
		t.Fatal(h.err)
	}
	time.Sleep(timeout * 3 / 2)
	checkEcho(t, c, 100)
}

// Mutual TLS: a client certificate from the CA is accepted and its identity
// read; no certificate, or one from another CA, is refused.
func TestTLSMutual(t *testing.T) {
	pki := newPKI(t, "ca")
	l := listenTLS(t, pki.store("server", true, 0).ServerConfig(), 0)
	ch := echoServer(t, l)

	cert := pki.client(pkix.Name{CommonName: "client-1", Organization: []string{"acme"}},
		[]string{"client-1.example"}, []string{"c1@example.com"})
	c := dialTLS(t, l.Addr(), pki.clientConfig(cert))
	checkEcho(t, c, 1000)
	h := next(t, ch)
	if h.err != nil {
		t.Fatal(h.err)
	}
	for mode, want := range map[string]string{
		IdentityCN:  "client-1",
		IdentityDN:  "CN=client-1,O=acme",
		IdentitySAN: "client-1.example",
	} {
		if got, ok := PeerIdentity(h.c, mode); !ok || got != want {
			t.Errorf("PeerIdentity(%s) = %q, %v; want %q", mode, got, ok, want)
		}
	}

	other := newPKI(t, "other ca")
	for name, conf := range map[string]*tls.Config{
		"no certificate":    pki.clientConfig(),
		"another CA's cert": pki.clientConfig(other.client(pkix.Name{CommonName: "mallory"}, nil, nil)),
	} {
		t.Run(name, func(t *testing.T) {
			refused(t, l.Addr(), conf)
			if h := next(t, ch); h.err == nil {
				t.Error("server handshake succeeded")
			}
		})
	}
}

// refused checks that a TLS client with conf cannot talk to addr. In TLS
// 1.3 the client's handshake completes before the server checks its
// certificate, so the refusal may only show on the first read.
func refused(tb testing.TB, addr net.Addr, conf *tls.Config) {
	tb.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr.String(), conf)
	if err != nil {
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write([]byte{0xc0, 0x00}) // PINGREQ
	if _, err := c.Read(make([]byte, 2)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		tb.Fatalf("client was not refused: read = %v", err)
	}
}

// Reload swaps the certificate for new handshakes while an established
// connection keeps working; a failed reload keeps the old one.
func TestTLSReload(t *testing.T) {
	pki := newPKI(t, "ca")
	certFile, keyFile := pki.writePair("server", pki.server("server-a"))
	store, err := NewCertStore(TLSConfig{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	l := listenTLS(t, store.ServerConfig(), 0)
	echoServer(t, l)
	served := func(c *tls.Conn) string { return c.ConnectionState().PeerCertificates[0].Subject.CommonName }

	a := dialTLS(t, l.Addr(), pki.clientConfig())
	checkEcho(t, a, 1000)
	if got := served(a); got != "server-a" {
		t.Fatalf("served %q, want server-a", got)
	}

	pki.writePair("server", pki.server("server-b"))
	if err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	b := dialTLS(t, l.Addr(), pki.clientConfig())
	if got := served(b); got != "server-b" {
		t.Errorf("after reload served %q, want server-b", got)
	}
	checkEcho(t, b, 1000)
	checkEcho(t, a, 1000) // the old connection is unaffected

	// A garbage certificate, and a certificate that does not match its key.
	writeFile(t, certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"))
	if err := store.Reload(); err == nil {
		t.Error("Reload of a garbage certificate succeeded")
	}
	otherCert, _ := pki.writePair("mismatch", pki.server("server-c"))
	data, err := os.ReadFile(otherCert)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, certFile, data) // server-c's certificate with server-b's key
	if err := store.Reload(); err == nil || !strings.Contains(err.Error(), "reload") {
		t.Errorf("Reload of a mismatched pair = %v, want an error", err)
	}
	if got := store.Certificate().Subject.CommonName; got != "server-b" {
		t.Errorf("after failed reloads the store serves %q, want server-b", got)
	}
	d := dialTLS(t, l.Addr(), pki.clientConfig())
	if got := served(d); got != "server-b" {
		t.Errorf("after failed reloads served %q, want server-b", got)
	}
	checkEcho(t, d, 100)
}

// Reload also swaps the client CA pool.
func TestTLSReloadCA(t *testing.T) {
	pki := newPKI(t, "ca-1")
	store := pki.store("server", true, 0)
	l := listenTLS(t, store.ServerConfig(), 0)
	echoServer(t, l)

	old := pki.client(pkix.Name{CommonName: "old"}, nil, nil)
	checkEcho(t, dialTLS(t, l.Addr(), pki.clientConfig(old)), 10)

	next := newPKI(t, "ca-2")
	data, err := os.ReadFile(next.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, pki.CAFile, data)
	if err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	refused(t, l.Addr(), pki.clientConfig(old))
	conf := pki.clientConfig(next.client(pkix.Name{CommonName: "new"}, nil, nil))
	checkEcho(t, dialTLS(t, l.Addr(), conf), 10)
}

// Only TLS 1.2 and 1.3 are spoken; MinVersion 1.3 refuses 1.2.
func TestTLSVersions(t *testing.T) {
	pki := newPKI(t, "ca")
	for _, tc := range []struct {
		min, client uint16
		ok          bool
	}{
		{0, tls.VersionTLS11, false},
		{0, tls.VersionTLS10, false},
		{0, tls.VersionTLS12, true},
		{0, tls.VersionTLS13, true},
		{tls.VersionTLS13, tls.VersionTLS12, false},
		{tls.VersionTLS13, tls.VersionTLS13, true},
	} {
		name := "min " + tls.VersionName(max(tc.min, tls.VersionTLS12)) + " client " + tls.VersionName(tc.client)
		t.Run(name, func(t *testing.T) {
			l := listenTLS(t, pki.store("server", false, tc.min).ServerConfig(), 0)
			echoServer(t, l)
			conf := pki.clientConfig()
			conf.MinVersion, conf.MaxVersion = tc.client, tc.client
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.Addr().String(), conf)
			if err == nil {
				c.Close()
			}
			if (err == nil) != tc.ok {
				t.Errorf("dial = %v, want ok=%v", err, tc.ok)
			}
		})
	}

	// A plain config asking for less than 1.2 is raised to 1.2.
	conf := &tls.Config{Certificates: []tls.Certificate{pki.server("server")}, MinVersion: tls.VersionTLS10}
	l := listenTLS(t, conf, 0)
	echoServer(t, l)
	client := pki.clientConfig()
	client.MaxVersion = tls.VersionTLS11
	client.MinVersion = tls.VersionTLS10
	if c, err := tls.Dial("tcp", l.Addr().String(), client); err == nil {
		c.Close()
		t.Error("TLS 1.1 client accepted by a listener configured for 1.0")
	}
}

func TestCertStoreErrors(t *testing.T) {
	pki := newPKI(t, "ca")
	certFile, keyFile := pki.writePair("server", pki.server("server"))
	garbage := pki.dir + "/garbage.pem"
	writeFile(t, garbage, []byte("not pem"))
	for name, cfg := range map[string]TLSConfig{
		"no cert":              {KeyFile: keyFile},
		"missing key":          {CertFile: certFile, KeyFile: pki.dir + "/nope.key"},
		"key is a certificate": {CertFile: certFile, KeyFile: certFile},
		"verify without ca":    {CertFile: certFile, KeyFile: keyFile, VerifyPeer: true},
		"garbage ca":           {CertFile: certFile, KeyFile: keyFile, CAFile: garbage, VerifyPeer: true},
		"tls 1.1":              {CertFile: certFile, KeyFile: keyFile, MinVersion: tls.VersionTLS11},
	} {
		if _, err := NewCertStore(cfg); err == nil {
			t.Errorf("%s: NewCertStore succeeded", name)
		}
	}
	// A CA without verify_peer: a certificate is optional, verified if given.
	s, err := NewCertStore(TLSConfig{CertFile: certFile, KeyFile: keyFile, CAFile: pki.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	l := listenTLS(t, s.ServerConfig(), 0)
	ch := echoServer(t, l)
	checkEcho(t, dialTLS(t, l.Addr(), pki.clientConfig()), 10)
	if h := next(t, ch); h.err != nil {
		t.Fatal(h.err)
	}
	checkEcho(t, dialTLS(t, l.Addr(), pki.clientConfig(pki.client(pkix.Name{CommonName: "opt"}, nil, nil))), 10)
	if h := next(t, ch); h.err != nil {
		t.Fatal(h.err)
	} else if id, ok := PeerIdentity(h.c, IdentityCN); !ok || id != "opt" {
		t.Errorf("PeerIdentity = %q, %v; want opt", id, ok)
	}
}

// Handshake is a no-op for connections without a handshake.
func TestHandshakePlain(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if err := Handshake(a, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok := ConnectionState(a); ok {
		t.Error("ConnectionState of a pipe reported TLS")
	}
}
