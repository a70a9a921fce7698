package client

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nanoactor/nanoactor/config"
	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/supervisor"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key to
// dir and returns their paths and a pool trusting it.
func selfSigned(t *testing.T, dir string) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTransports publishes and receives through every transport URL scheme.
func TestTransports(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	doc := "[log]\nlevel = \"error\"\n"
	for _, l := range []string{"tcp", "tls", "ws", "wss", "quic"} {
		doc += fmt.Sprintf("[[listener]]\nname = %q\nprotocol = %q\nbind = \"127.0.0.1:0\"\n", l, l)
		if l == "tls" || l == "wss" || l == "quic" {
			doc += fmt.Sprintf("cert_file = %q\nkey_file = %q\n", certFile, keyFile)
		}
	}
	cfg, err := config.Parse("test.toml", []byte(doc))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	node, err := supervisor.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		node.Shutdown(ctx)
	})
	addr := func(name string) string { return node.Addr(name).String() }
	tc := &tls.Config{RootCAs: pool}
	for _, url := range []string{
		"mqtt://" + addr("tcp"),
		"mqtts://" + addr("tls"),
		"ws://" + addr("ws") + "/mqtt",
		"wss://" + addr("wss") + "/mqtt",
		"quic://" + addr("quic"),
	} {
		t.Run(strings.SplitN(url, ":", 2)[0], func(t *testing.T) {
			got := make(chan Message, 1)
			c := dialT(t, Options{URL: url, TLS: tc, Version: 5, CleanStart: true, OnMessage: func(m Message) { got <- m }})
			if _, err := c.Subscribe(context.Background(), protocol.Subscription{Filter: []byte("tr"), QoS: 1}); err != nil {
				t.Fatal(err)
			}
			if err := c.Publish(context.Background(), &protocol.Publish{Topic: []byte("tr"), Payload: []byte(url), QoS: 1}); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-got:
				if string(m.Payload) != url {
					t.Fatalf("got %q", m.Payload)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no message")
			}
			if err := c.Disconnect(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
