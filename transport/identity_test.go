package transport

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"testing"
)

// stateConn is a net.Conn with a given TLS state.
type stateConn struct {
	net.Conn
	st tls.ConnectionState
}

func (c stateConn) ConnectionState() tls.ConnectionState { return c.st }

func TestPeerIdentity(t *testing.T) {
	pki := newPKI(t, "ca")
	full := pki.client(pkix.Name{CommonName: "dev-7", Organization: []string{"acme"}, OrganizationalUnit: []string{"iot"}},
		[]string{"dev-7.acme.example", "alt.example"}, []string{"dev7@acme.example"}, "spiffe://acme/dev-7")
	emailOnly := pki.client(pkix.Name{CommonName: "e"}, nil, []string{"e@acme.example"}, "spiffe://acme/e")
	uriOnly := pki.client(pkix.Name{CommonName: "u"}, nil, nil, "spiffe://acme/u")
	noCN := pki.client(pkix.Name{Organization: []string{"acme"}}, nil, nil)

	verified := func(c tls.Certificate) net.Conn {
		return stateConn{st: tls.ConnectionState{
			HandshakeComplete: true,
			PeerCertificates:  []*x509.Certificate{c.Leaf},
			VerifiedChains:    [][]*x509.Certificate{{c.Leaf, pki.ca}},
		}}
	}
	unverified := stateConn{st: tls.ConnectionState{HandshakeComplete: true, PeerCertificates: []*x509.Certificate{full.Leaf}}}
	incomplete := stateConn{st: tls.ConnectionState{PeerCertificates: []*x509.Certificate{full.Leaf},
		VerifiedChains: [][]*x509.Certificate{{full.Leaf}}}}

	for _, tc := range []struct {
		name string
		c    net.Conn
		mode string
		want string // "" = not ok
	}{
		{"cn", verified(full), IdentityCN, "dev-7"},
		{"dn", verified(full), IdentityDN, "CN=dev-7,OU=iot,O=acme"},
		{"san dns first", verified(full), IdentitySAN, "dev-7.acme.example"},
		{"san email when no dns", verified(emailOnly), IdentitySAN, "e@acme.example"},
		{"san uri when no dns or email", verified(uriOnly), IdentitySAN, "spiffe://acme/u"},
		{"san none", verified(noCN), IdentitySAN, ""},
		{"empty cn", verified(noCN), IdentityCN, ""},
		{"unknown mode", verified(full), "serial", ""},
		{"unverified", unverified, IdentityCN, ""},
		{"handshake incomplete", incomplete, IdentityCN, ""},
		{"plain conn", &net.TCPConn{}, IdentityCN, ""},
	} {
		got, ok := PeerIdentity(tc.c, tc.mode)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: PeerIdentity = %q, %v; want %q", tc.name, got, ok, tc.want)
		}
	}
}
