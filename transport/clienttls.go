package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ClientTLSFiles name the PEM files of a client's TLS configuration.
type ClientTLSFiles struct {
	CAFile     string // certificates the server's must chain to; empty: the system roots
	CertFile   string // client certificate for mutual TLS; with KeyFile, or neither
	KeyFile    string
	ServerName string // checked in the server's certificate and sent in SNI; empty: the dialled host
	Insecure   bool   // accept any server certificate (tests only)
}

// ClientTLSConfig loads f into a client TLS configuration (TLS 1.2 or later).
// Errors name the file at fault.
func ClientTLSConfig(f ClientTLSFiles) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName, InsecureSkipVerify: f.Insecure} //nolint:gosec // Insecure is documented as test-only
	if f.CAFile != "" {
		pem, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca file %s: no PEM certificates", f.CAFile)
		}
	}
	if f.CertFile != "" || f.KeyFile != "" {
		if f.CertFile == "" || f.KeyFile == "" {
			return nil, errors.New("a client certificate needs both its certificate and its key file")
		}
		kp, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{kp}
	}
	return tc, nil
}
