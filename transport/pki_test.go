package transport

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// testPKI is a throwaway certificate authority: ECDSA P-256 keys (fast to
// generate), certificates valid from an hour ago for a day, files under
// t.TempDir().
type testPKI struct {
	tb     testing.TB
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
	CAFile string
}

var serial atomic.Int64

func newPKI(tb testing.TB, name string) *testPKI {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial.Add(1)),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"nanoactor test"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	p := &testPKI{tb: tb, dir: tb.TempDir(), ca: ca, caKey: key, pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.CAFile = filepath.Join(p.dir, "ca.pem")
	writeFile(tb, p.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return p
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

// issue signs tmpl (serial, validity and key usage filled in) with the CA.
func (p *testPKI) issue(tmpl *x509.Certificate) tls.Certificate {
	p.tb.Helper()
	key := newKey(p.tb)
	tmpl.SerialNumber = big.NewInt(serial.Add(1))
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		p.tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		p.tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// server issues a server certificate for localhost and the loopback
// addresses, with common name cn.
func (p *testPKI) server(cn string) tls.Certificate {
	return p.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// client issues a client certificate with the given subject and SANs.
func (p *testPKI) client(subject pkix.Name, dns, email []string, uris ...string) tls.Certificate {
	p.tb.Helper()
	tmpl := &x509.Certificate{
		Subject:        subject,
		DNSNames:       dns,
		EmailAddresses: email,
		ExtKeyUsage:    []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			p.tb.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	return p.issue(tmpl)
}

// writePair writes c as PEM to <dir>/<name>.pem and <name>.key and returns
// the paths. Writing again replaces the files (a certificate rotation).
func (p *testPKI) writePair(name string, c tls.Certificate) (certFile, keyFile string) {
	p.tb.Helper()
	certFile = filepath.Join(p.dir, name+".pem")
	keyFile = filepath.Join(p.dir, name+".key")
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		p.tb.Fatal(err)
	}
	var certPEM bytes.Buffer
	for _, b := range c.Certificate {
		_ = pem.Encode(&certPEM, &pem.Block{Type: "CERTIFICATE", Bytes: b})
	}
	writeFile(p.tb, certFile, certPEM.Bytes())
	writeFile(p.tb, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	return certFile, keyFile
}

// store writes a fresh server certificate (common name cn) and returns a
// CertStore serving it with the given policy.
func (p *testPKI) store(cn string, verifyPeer bool, minVersion uint16) *CertStore {
	p.tb.Helper()
	certFile, keyFile := p.writePair("server", p.server(cn))
	cfg := TLSConfig{CertFile: certFile, KeyFile: keyFile, VerifyPeer: verifyPeer, MinVersion: minVersion}
	if verifyPeer {
		cfg.CAFile = p.CAFile
	}
	s, err := NewCertStore(cfg)
	if err != nil {
		p.tb.Fatal(err)
	}
	return s
}

// clientConfig trusts the CA, expects a certificate for localhost and
// presents certs (if any).
func (p *testPKI) clientConfig(certs ...tls.Certificate) *tls.Config {
	return &tls.Config{RootCAs: p.pool, ServerName: "localhost", Certificates: certs}
}

func writeFile(tb testing.TB, name string, b []byte) {
	tb.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// echoServer serves l with a Server whose Handle does what a broker's
// connection goroutine does first (Handshake with the listener's deadline)
// and then echoes. Each handled connection's handshake result (and, for a
// good one, the connection) is sent on the returned channel, which has room
// for 16. Cleanup closes the Server and waits for Serve and every Handle.
func echoServer(tb testing.TB, l Listener) <-chan handled {
	tb.Helper()
	ch := make(chan handled, 16)
	s := &Server{Handle: noPark(func(c net.Conn) {
		err := Handshake(c, 0)
		select {
		case ch <- handled{c: c, err: err, at: time.Now()}:
		default:
		}
		if err != nil {
			return
		}
		_, _ = io.Copy(c, c)
	})}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	tb.Cleanup(func() {
		_ = s.Close()
		if err := <-served; err != nil {
			tb.Errorf("Serve: %v", err)
		}
		done := make(chan struct{})
		go func() { s.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			tb.Errorf("handlers still running 10s after Close")
		}
	})
	return ch
}

type handled struct {
	c   net.Conn
	err error
	at  time.Time
}

// next returns the next handled connection or fails after 5s.
func next(tb testing.TB, ch <-chan handled) handled {
	tb.Helper()
	select {
	case h := <-ch:
		return h
	case <-time.After(5 * time.Second):
		tb.Fatal("no connection handled within 5s")
		return handled{}
	}
}

// checkEcho writes n pseudo-random bytes to c in uneven chunks while
// reading them back, and compares.
func checkEcho(tb testing.TB, c net.Conn, n int) {
	tb.Helper()
	want := make([]byte, n)
	_, _ = rand.Read(want)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	werr := make(chan error, 1)
	go func() {
		b := want
		for i := 1; len(b) > 0; i++ {
			k := min(len(b), 1+(i*7919)%9000)
			if _, err := c.Write(b[:k]); err != nil {
				werr <- err
				return
			}
			b = b[k:]
		}
		werr <- nil
	}()
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil {
		tb.Fatalf("echo read: %v", err)
	}
	if err := <-werr; err != nil {
		tb.Fatalf("echo write: %v", err)
	}
	if !bytes.Equal(got, want) {
		tb.Fatal("echoed bytes differ")
	}
}

// waitClosed fails unless c's peer closes it (Read returns a non-timeout
// error) within d.
func waitClosed(tb testing.TB, c net.Conn, d time.Duration) {
	tb.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 512)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			tb.Fatalf("connection not closed by the server within %v", d)
		}
		return
	}
}
