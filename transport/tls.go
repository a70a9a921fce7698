package transport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultHandshakeTimeout bounds everything between accepting a socket and
// having an MQTT byte stream: the TLS handshake, the HTTP upgrade of a
// WebSocket, the QUIC handshake and the opening of its stream. A listener
// given a zero (or negative) handshake timeout uses it.
const DefaultHandshakeTimeout = 10 * time.Second

// TLSConfig names the PEM files and the policy of a TLS server endpoint
// (tls, wss, quic listeners). It mirrors the [[listener]] keys without
// importing the config package.
type TLSConfig struct {
	// CertFile is the server certificate chain, leaf first; KeyFile its
	// private key. Both required.
	CertFile, KeyFile string
	// CAFile holds the certificates client certificates must chain to.
	// Required when VerifyPeer is set. Set without VerifyPeer, a client
	// certificate is optional but, when presented, must verify against it.
	CAFile string
	// VerifyPeer requires a client certificate that chains to CAFile
	// (mutual TLS: tls.RequireAndVerifyClientCert).
	VerifyPeer bool
	// MinVersion is tls.VersionTLS12 or tls.VersionTLS13; zero means
	// tls.VersionTLS12. Older versions are refused.
	MinVersion uint16
}

// CertStore holds the certificate, key and client CA pool of a TLS endpoint
// and swaps them atomically on Reload, so a SIGHUP can rotate certificates
// without dropping connections: a reload affects handshakes that start
// after it; established connections keep their session.
//
// All methods are safe for concurrent use.
type CertStore struct {
	cfg TLSConfig
	mu  sync.Mutex                 // serializes Reload
	cur atomic.Pointer[tls.Config] // the complete server config of the current files
}

// NewCertStore loads cfg's files and returns a store serving them. It fails
// if a file cannot be read or parsed, the key does not match the
// certificate, VerifyPeer is set without CAFile, or MinVersion is not TLS
// 1.2 or 1.3.
func NewCertStore(cfg TLSConfig) (*CertStore, error) {
	switch {
	case cfg.MinVersion == 0:
		cfg.MinVersion = tls.VersionTLS12
	case cfg.MinVersion != tls.VersionTLS12 && cfg.MinVersion != tls.VersionTLS13:
		return nil, fmt.Errorf("tls: min version %s: only TLS 1.2 and 1.3 are supported",
			tls.VersionName(cfg.MinVersion))
	}
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("tls: cert_file and key_file are required")
	}
	if cfg.VerifyPeer && cfg.CAFile == "" {
		return nil, errors.New("tls: verify_peer requires ca_file")
	}
	s := &CertStore{cfg: cfg}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload re-reads the certificate, key and CA files and, if all of them
// load, makes them the ones served to new handshakes. On any error the
// previous certificate and pool stay in use and the error is returned, so
// a half-written file or a certificate that does not match its key never
// takes a listener down.
func (s *CertStore) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	conf, err := s.load()
	if err != nil {
		return fmt.Errorf("tls: reload: %w", err)
	}
	s.cur.Store(conf)
	return nil
}

// load builds a complete, immutable server config from the files.
func (s *CertStore) load() (*tls.Config, error) {
	certPEM, err := os.ReadFile(s.cfg.CertFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(s.cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s, %s: %w", s.cfg.CertFile, s.cfg.KeyFile, err)
	}
	if cert.Leaf == nil { // X509KeyPair fills Leaf unless GODEBUG x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", s.cfg.CertFile, err)
		}
	}
	conf := &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   s.cfg.MinVersion,
		ClientAuth:   tls.NoClientCert,
	}
	if s.cfg.CAFile != "" {
		caPEM, err := os.ReadFile(s.cfg.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, fmt.Errorf("%s: no PEM certificates", s.cfg.CAFile)
		}
		conf.ClientCAs = pool
		conf.ClientAuth = tls.VerifyClientCertIfGiven
		if s.cfg.VerifyPeer {
			conf.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return conf, nil
}

// ServerConfig returns a config for ListenTLS, ListenWS and ListenQUIC
// whose every handshake uses the files loaded by the latest successful
// Reload (through GetConfigForClient). The listeners set the ALPN protocols
// they need themselves. Each call returns a new config; the caller may
// change fields other than GetConfigForClient, but they have no effect on
// the handshake, which uses the store's config.
func (s *CertStore) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: s.cfg.MinVersion,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return s.cur.Load(), nil
		},
	}
}

// Certificate returns the leaf certificate new handshakes present, for logs
// (subject, expiry) after a reload. The caller must not modify it.
func (s *CertStore) Certificate() *x509.Certificate {
	return s.cur.Load().Certificates[0].Leaf
}

// serverConfig returns a copy of conf that refuses versions before minVer
// (never older than TLS 1.2) and negotiates exactly the ALPN protocols
// protos (none: no ALPN), also for the configs its GetConfigForClient
// returns. Those are adapted once per distinct config returned (a
// CertStore returns the same one until its next Reload), not per handshake.
func serverConfig(conf *tls.Config, minVer uint16, protos []string) (*tls.Config, error) {
	if conf == nil {
		return nil, errors.New("tls: nil config")
	}
	minVer = max(minVer, tls.VersionTLS12)
	fits := func(c *tls.Config) bool {
		return c.MinVersion >= minVer && (protos == nil || slices.Equal(c.NextProtos, protos))
	}
	adapt := func(c *tls.Config) *tls.Config {
		c = c.Clone()
		c.MinVersion = max(c.MinVersion, minVer)
		if protos != nil {
			c.NextProtos = protos
		}
		return c
	}
	out := adapt(conf)
	if get := conf.GetConfigForClient; get != nil {
		type pair struct{ from, to *tls.Config }
		var last atomic.Pointer[pair]
		out.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := get(hello)
			if err != nil || c == nil || fits(c) {
				return c, err
			}
			if p := last.Load(); p != nil && p.from == c {
				return p.to, nil
			}
			p := &pair{from: c, to: adapt(c)}
			last.Store(p)
			return p.to, nil
		}
	}
	return out, nil
}

// tlsListener is a TCP listener whose connections speak TLS.
type tlsListener struct {
	tcp     Listener
	conf    *tls.Config
	timeout time.Duration
}

// ListenTLS listens on bind for MQTT over TLS (TLS 1.2 or 1.3: conf's
// MinVersion is raised to 1.2 if lower). conf is typically
// CertStore.ServerConfig(); it is copied, not kept. Sockets get the TCP
// keepalive settings of ListenTCP.
//
// Accept never runs a handshake. It returns the TLS connection at once (a
// wrapper of *tls.Conn: use ConnectionState and PeerIdentity, not a type
// assertion) with a deadline of handshakeTimeout (zero:
// DefaultHandshakeTimeout) already set on the socket, so a client that
// stalls or sends garbage never holds up the accept loop, and the handshake,
// whoever runs it, fails once that deadline passes. The connection's own
// goroutine must call Handshake before anything else; see Handshake.
//
// Close of an accepted connection sends close_notify, which crypto/tls
// bounds by 5s on a peer that does not read; after a failed Write (a write
// timeout) it skips close_notify and closes the socket at once.
func ListenTLS(bind string, conf *tls.Config, handshakeTimeout time.Duration) (Listener, error) {
	conf, err := serverConfig(conf, 0, nil)
	if err != nil {
		return nil, err
	}
	tcp, err := ListenTCP(bind)
	if err != nil {
		return nil, err
	}
	return &tlsListener{tcp: tcp, conf: conf, timeout: orDefault(handshakeTimeout)}, nil
}

func orDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultHandshakeTimeout
	}
	return d
}

// Accept returns the next connection, a TLS connection whose handshake has
// not run yet, with the handshake deadline set.
func (l *tlsListener) Accept() (net.Conn, error) {
	for {
		c, err := l.tcp.Accept()
		if err != nil {
			return nil, err
		}
		if err := c.SetDeadline(time.Now().Add(l.timeout)); err != nil {
			_ = c.Close() // already dead (reset before we got to it); not the listener's failure
			continue
		}
		return &tlsConn{Conn: tls.Server(c, l.conf)}, nil
	}
}

// tlsConn is a server-side TLS connection from ListenTLS. It differs from
// its *tls.Conn only in Close after a failed Write.
type tlsConn struct {
	*tls.Conn
	failed atomic.Bool // a Write failed: the TLS write side is unusable
}

func (c *tlsConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.failed.Store(true)
	}
	return n, err
}

// Close sends close_notify and closes the socket, like tls.Conn.Close. But
// after a failed Write (a write timeout: the peer does not read) it closes
// the socket at once: crypto/tls would still try to write close_notify,
// under its own 5s deadline, and block the closing goroutine that long.
func (c *tlsConn) Close() error {
	if c.failed.Load() {
		return c.NetConn().Close()
	}
	return c.Conn.Close()
}

func (l *tlsListener) Close() error   { return l.tcp.Close() }
func (l *tlsListener) Addr() net.Addr { return l.tcp.Addr() }

// handshaker is a connection whose stream is not ready until a handshake,
// run on the connection's own goroutine, completes.
type handshaker interface {
	handshake(timeout time.Duration) error
}

// Handshake makes a freshly accepted connection ready for MQTT. The
// connection's own goroutine (Server.Handle) calls it first, before any
// Read, Write, SetDeadline, PeerIdentity or NewOutbound:
//
//   - TLS (ListenTLS, or any *tls.Conn): runs the TLS handshake. With
//     timeout > 0 the deadline is now+timeout; otherwise the deadline
//     ListenTLS set at accept stays in force. On success both deadlines
//     are cleared.
//   - QUIC (ListenQUIC): waits for the client to open the connection's
//     bidirectional stream (the client's first byte, in practice its
//     CONNECT), bounded the same way (timeout > 0, else the accept-time
//     deadline); on failure the QUIC connection is closed.
//   - WebSocket and every other connection: no-op, returns nil (the HTTP
//     upgrade, and the TLS handshake for wss, finished before Accept).
//
// On error the caller closes c and drops it; the error says why (a timeout
// error matches os.ErrDeadlineExceeded). Handshake blocks only the calling
// goroutine. It must not run concurrently with I/O on c.
//
// If the caller skips Handshake, a TLS connection handshakes lazily on its
// first Read or Write, still bounded by the accept-time deadline (which then
// stays set until the caller replaces it), and a QUIC connection waits for
// its stream on first use, bounded the same way.
func Handshake(c net.Conn, timeout time.Duration) error {
	if tc, ok := c.(*tlsConn); ok {
		c = tc.Conn
	}
	switch c := c.(type) {
	case *tls.Conn:
		if timeout > 0 {
			if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
				return fmt.Errorf("tls handshake: %w", err)
			}
		}
		if err := c.Handshake(); err != nil {
			return fmt.Errorf("tls handshake: %w", err)
		}
		return c.SetDeadline(time.Time{})
	case handshaker:
		return c.handshake(timeout)
	}
	return nil
}
