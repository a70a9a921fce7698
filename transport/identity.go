package transport

import (
	"crypto/tls"
	"net"
)

// Identity modes of PeerIdentity, the values of the use_identity_as_username
// listener key.
const (
	IdentityCN  = "cn"  // the subject common name
	IdentityDN  = "dn"  // the whole subject, RFC 2253 form
	IdentitySAN = "san" // the first DNS name, else e-mail address, else URI
)

// tlsStater is a connection of this package that may carry TLS state.
type tlsStater interface {
	tlsState() (tls.ConnectionState, bool)
}

// ConnectionState returns the TLS state of a connection produced by this
// package's listeners (or DialQUIC): a *tls.Conn (tls), a wss or a QUIC
// connection. ok is false for a plain TCP or ws connection and before the
// handshake has completed (call Handshake first). Any other net.Conn with a
// ConnectionState() tls.ConnectionState method is asked too.
func ConnectionState(c net.Conn) (tls.ConnectionState, bool) {
	var st tls.ConnectionState
	switch c := c.(type) {
	case tlsStater:
		return c.tlsState()
	case interface{ ConnectionState() tls.ConnectionState }: // *tls.Conn
		st = c.ConnectionState()
	default:
		return tls.ConnectionState{}, false
	}
	return st, st.HandshakeComplete
}

// PeerIdentity returns the identity of the client certificate of c chosen
// by mode: IdentityCN, IdentityDN (cert.Subject.String(), RFC 2253) or
// IdentitySAN (the first DNS name, else the first e-mail address, else the
// first URI). ok is false when c has no TLS state, the client presented no
// certificate, the certificate was not verified against the listener's CA
// pool (only a verified identity may replace a username), the chosen field
// is empty, or mode is unknown.
func PeerIdentity(c net.Conn, mode string) (string, bool) {
	st, ok := ConnectionState(c)
	if !ok || len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return "", false
	}
	cert := st.PeerCertificates[0]
	var id string
	switch mode {
	case IdentityCN:
		id = cert.Subject.CommonName
	case IdentityDN:
		id = cert.Subject.String()
	case IdentitySAN:
		switch {
		case len(cert.DNSNames) > 0:
			id = cert.DNSNames[0]
		case len(cert.EmailAddresses) > 0:
			id = cert.EmailAddresses[0]
		case len(cert.URIs) > 0:
			id = cert.URIs[0].String()
		}
	}
	return id, id != ""
}
