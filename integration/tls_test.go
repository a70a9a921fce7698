package integration

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"runtime"
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

// TestTLSStuckSubscriberBounded: over TLS, a subscriber that stops
// reading does not slow a healthy client, the broker's memory stays within
// its per-client bounds while a flood is aimed at it, and write_timeout
// closes it with one supervision line.
func TestTLSStuckSubscriberBounded(t *testing.T) {
	pki := newTestPKI(t)
	b, dials := allTransports(t, pki, `
[mqtt]
max_packet_size = "64KiB"
connect_packet_max = "16KiB"
max_outbound_bytes = "256KiB"
max_queued_bytes = "1MiB"
write_timeout = "2s"
`)
	stuck, _, err := streamConnect(dials["tls"], "stuck", true)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.nc.Close()
	if err := stuck.send(&protocol.Subscribe{PacketID: 1, Filters: []protocol.Subscription{{Filter: []byte("flood/#"), QoS: 0}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stuck.next(); err != nil {
		t.Fatal(err)
	}
	// From here on "stuck" never reads.
	pp := startPingPong(t, dials["tls"], "healthy")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	flood, _, err := streamConnect(dials["tcp"], "flooder", true)
	if err != nil {
		t.Fatal(err)
	}
	defer flood.nc.Close()
	pkt, _ := (&protocol.Publish{Topic: []byte("flood/x"), Payload: make([]byte, 4096)}).Append(nil, protocol.Version5)
	batch := bytes.Repeat(pkt, 16)
	var sent int64
	var peak uint64
	end := time.Now().Add(3 * time.Second)
	for time.Now().Before(end) {
		flood.nc.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := flood.nc.Write(batch); err != nil {
			t.Fatalf("flood: %v", err)
		}
		sent += int64(len(batch))
		if sent%(4<<20) < int64(len(batch)) {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak {
				peak = ms.HeapAlloc
			}
		}
	}
	pp.finish(t)
	growth := int64(peak) - int64(base)
	t.Logf("flooded %d MiB at a stuck TLS subscriber; heap base %d MiB, peak %d MiB; healthy client %d round trips, longest gap %v",
		sent>>20, base>>20, peak>>20, pp.n, pp.maxGap)
	if pp.maxGap > time.Second {
		t.Errorf("healthy client paused %v, want under 1s", pp.maxGap)
	}
	// Per-client bounds: 256 KiB outbound + 1 MiB queue + 1 MiB backlog for
	// the stuck session, reader credit for the flooder; allow generous
	// slack for the test's own clients and the GC's lag.
	if growth > 24<<20 {
		t.Errorf("heap grew %d MiB during the flood, want it bounded (under 24 MiB)", growth>>20)
	}
	eventually(t, 10*time.Second, "the stuck subscriber closed by write_timeout", func() bool {
		return b.logs.Count(`"msg":"supervision"`, `"reason":"write timeout"`, `"client":"stuck"`) == 1
	})
}
