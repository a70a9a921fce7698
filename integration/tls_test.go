package integration

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/nanoactor/nanoactor/protocol"
)

// TestMutualTLSIdentityAsUsername: with verify_peer a client without a
// certificate is refused at the handshake; with one, its CN becomes the
// username (use_identity_as_username = "cn").
func TestMutualTLSIdentityAsUsername(t *testing.T) {
	pki := newTestPKI(t)
	b := startBroker(t, fmt.Sprintf(`
[[listener]]
name = "mtls"
protocol = "tls"
bind = "127.0.0.1:0"
cert_file = %q
key_file = %q
ca_file = %q
verify_peer = true
use_identity_as_username = "cn"
`, pki.certFile, pki.keyFile, pki.caFile))
	addr := b.node.Addr("mtls").String()
	// Without a client certificate: the handshake fails, no session.
	noCert := func() (net.Conn, error) { return tls.Dial("tcp", addr, pki.clientTLS()) }
	if c, _, err := streamConnect(noCert, "anon", true); err == nil {
		c.nc.Close()
		t.Fatal("a client without a certificate connected through verify_peer")
	}
	withCert := func() (net.Conn, error) {
		tc := pki.clientTLS()
		tc.Certificates = []tls.Certificate{pki.clientPair}
		return tls.Dial("tcp", addr, tc)
	}
	c, _, err := streamConnect(withCert, "certified", true)
	if err != nil {
		t.Fatalf("client with a certificate: %v", err)
	}
	defer c.nc.Close()
	eventually(t, 5*time.Second, "the connected log line", func() bool {
		return b.logs.Count(`"client connected"`, `"client":"certified"`, `"username":"client-1"`) == 1
	})
	if b.logs.Count(`"handshake failed"`) == 0 {
		t.Error("the refused handshake was not logged")
	}
}

// TestTLSHandshakeStallDoesNotFreezeListener: clients that open a TCP
// connection to the TLS port and send nothing, or garbage, cost one log
// line each and never delay a good client; the stalled ones are closed at
// the handshake deadline (connect_timeout).
func TestTLSHandshakeStallDoesNotFreezeListener(t *testing.T) {
	pki := newTestPKI(t)
	b := startBroker(t, fmt.Sprintf(`
[[listener]]
name = "tls"
protocol = "tls"
bind = "127.0.0.1:0"
cert_file = %q
key_file = %q

[mqtt]
connect_timeout = "1s"
`, pki.certFile, pki.keyFile))
	addr := b.node.Addr("tls").String()
	var stalled []net.Conn
	for i := 0; i < 20; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if i%2 == 1 {
			c.Write([]byte("GET / HTTP/1.0\r\n\r\n garbage"))
		}
		stalled = append(stalled, c)
	}
	start := time.Now()
	good := func() (net.Conn, error) { return tls.Dial("tcp", addr, pki.clientTLS()) }
	c, _, err := streamConnect(good, "good", true)
	if err != nil {
		t.Fatalf("good client behind 20 stalled handshakes: %v", err)
	}
	c.nc.Close()
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("good client took %v to connect", d)
	}
	// The silent ones are closed at the deadline.
	for i, s := range stalled {
		if i%2 == 1 {
			continue
		}
		s.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := s.Read(make([]byte, 1)); err == nil {
			t.Fatalf("stalled connection %d got data", i)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("stalled connection %d still open after 5s", i)
		}
	}
	eventually(t, 5*time.Second, "one log line per failed handshake", func() bool {
		return b.logs.Count(`"handshake failed"`) == len(stalled)
	})
}

// TestTLSCertificateReload: Reload (SIGHUP) swaps the certificate for new
// connections while an existing connection keeps working; a broken file
// keeps the old certificate.
func TestTLSCertificateReload(t *testing.T) {
	pkiA := newTestPKI(t)
	dir := t.TempDir()
	cert, key := dir+"/server.pem", dir+"/server.key"
	copyFile(t, pkiA.certFile, cert)
	copyFile(t, pkiA.keyFile, key)
	b := startBroker(t, fmt.Sprintf(`
[[listener]]
name = "tls"
protocol = "tls"
bind = "127.0.0.1:0"
cert_file = %q
key_file = %q
`, cert, key))
	addr := b.node.Addr("tls").String()
	dialWith := func(p *testPKI) dialFunc {
		return func() (net.Conn, error) { return tls.Dial("tcp", addr, p.clientTLS()) }
	}
	old, _, err := streamConnect(dialWith(pkiA), "old", true)
	if err != nil {
		t.Fatal(err)
	}
	defer old.nc.Close()
	pkiB := newTestPKI(t)
	copyFile(t, pkiB.certFile, cert)
	copyFile(t, pkiB.keyFile, key)
	if err := b.node.Reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	if c, _, err := streamConnect(dialWith(pkiA), "new-a", true); err == nil {
		c.nc.Close()
		t.Fatal("a client trusting only the old CA still connected after the reload")
	}
	c, _, err := streamConnect(dialWith(pkiB), "new-b", true)
	if err != nil {
		t.Fatalf("client trusting the new CA: %v", err)
	}
	c.nc.Close()
	// The old connection still works.
	if err := old.send(&protocol.Pingreq{}); err != nil {
		t.Fatalf("old connection: %v", err)
	}
	old.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := old.next(); err != nil {
		t.Fatalf("old connection after reload: %v", err)
	}
	// A broken file keeps the current certificate.
	os.WriteFile(cert, []byte("not a certificate"), 0o600)
	if err := b.node.Reload(); err == nil {
		t.Fatal("reload of a broken certificate succeeded")
	}
	c, _, err = streamConnect(dialWith(pkiB), "still-b", true)
	if err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
	c.nc.Close()
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
