package transport

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// QUIC settings of ListenQUIC and DialQUIC.
const (
	// QUICALPN is the ALPN protocol of MQTT over QUIC (as EMQX and NanoMQ
	// use it). TLS 1.3 is mandatory in QUIC.
	QUICALPN = "mqtt"

	// QUICMaxIdleTimeout closes a QUIC connection that received nothing
	// for this long. MQTT keepalive does the real liveness work; this only
	// reaps connections whose MQTT layer is gone.
	QUICMaxIdleTimeout = 5 * time.Minute

	// QUICKeepAlivePeriod is how often a connection from DialQUIC sends a
	// PING frame when otherwise idle, so that NAT bindings (often shorter
	// lived than an MQTT keepalive interval) stay open. Listeners send
	// none.
	QUICKeepAlivePeriod = 25 * time.Second

	// QUICCloseLinger bounds how long Close waits, after sending the
	// stream's FIN, for the data written so far to be taken by the peer
	// (signalled by the peer finishing its side or closing the connection)
	// before closing the connection, which discards anything unsent.
	QUICCloseLinger = time.Second
)

// QUIC application error codes sent when this package closes a connection.
const (
	quicCodeNormal   quic.ApplicationErrorCode = 0x0 // Close
	quicCodeNoStream quic.ApplicationErrorCode = 0x1 // no stream before the handshake deadline
	quicCodeRefused  quic.ApplicationErrorCode = 0x2 // listener closed before Accept
)

// quicListener accepts QUIC connections, each carrying one MQTT connection
// on its first bidirectional stream.
//
// It owns its UDP socket and quic.Transport (not quic.ListenAddr's
// single-use transport) so that closing the listener leaves accepted
// connections open: the transport, and with it the socket, is closed when
// the listener is closed and the last accepted connection has ended.
//
// Goroutines: quic-go's (the transport's packet loop and send queue, one run
// loop per connection), all ending when the transport is closed; and a
// short-lived one per accepted connection when it ends (context.AfterFunc)
// to release its hold on the transport.
type quicListener struct {
	udp     *net.UDPConn
	tr      *quic.Transport
	ln      *quic.Listener
	timeout time.Duration

	mu     sync.Mutex
	active int  // accepted connections that have not ended
	closed bool // Close was called
	shut   bool // the transport is being (or was) closed
}

// ListenQUIC listens on the UDP address bind for MQTT over QUIC. tlsConf
// (typically CertStore.ServerConfig(); copied) gets ALPN "mqtt" and TLS 1.3
// forced. Connections are handed to Accept only once their QUIC handshake
// has completed; handshakes run on quic-go's goroutines, bounded by
// handshakeTimeout (zero: DefaultHandshakeTimeout; quic-go gives up on a
// silent client after it and on any handshake after twice it), so a client
// that stalls holds up nobody.
//
// The MQTT byte stream is the first bidirectional stream the client opens;
// a client may open no other. Accept returns at once, before that stream
// exists: the connection's goroutine calls Handshake, which waits for the
// stream until handshakeTimeout after Accept (or the timeout it is given)
// and otherwise closes the connection. A client that connects but never
// opens a stream therefore costs only its own goroutine, for a bounded time.
//
// Close of the returned conn sends FIN on the stream, lingers up to
// QUICCloseLinger for the peer, then closes the QUIC connection with
// application error 0. Close of the listener refuses handshakes in flight
// and connections not yet accepted; accepted ones stay open.
func ListenQUIC(bind string, tlsConf *tls.Config, handshakeTimeout time.Duration) (Listener, error) {
	conf, err := serverConfig(tlsConf, tls.VersionTLS13, []string{QUICALPN})
	if err != nil {
		return nil, err
	}
	addr, err := net.ResolveUDPAddr("udp", bind)
	if err != nil {
		return nil, err
	}
	udp, err := net.ListenUDP("udp", addr)
	if err != nil {
		return nil, err
	}
	l := &quicListener{udp: udp, tr: &quic.Transport{Conn: udp}, timeout: orDefault(handshakeTimeout)}
	l.ln, err = l.tr.Listen(conf, &quic.Config{
		HandshakeIdleTimeout:  l.timeout,
		MaxIdleTimeout:        QUICMaxIdleTimeout,
		MaxIncomingStreams:    1,
		MaxIncomingUniStreams: -1, // none
	})
	if err != nil {
		l.shutdown()
		return nil, err
	}
	return l, nil
}

// Accept returns the next QUIC connection whose handshake has completed,
// wrapped as a net.Conn whose stream is not open yet (see Handshake).
func (l *quicListener) Accept() (net.Conn, error) {
	qc, err := l.ln.Accept(context.Background())
	if err != nil {
		return nil, err // after Close: matches net.ErrClosed
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = qc.CloseWithError(quicCodeRefused, "listener closed")
		return nil, net.ErrClosed
	}
	l.active++
	l.mu.Unlock()
	context.AfterFunc(qc.Context(), l.release)
	return newQUICConn(qc, time.Now().Add(l.timeout)), nil
}

// release drops an ended connection's hold on the transport.
func (l *quicListener) release() {
	l.mu.Lock()
	l.active--
	shut := l.closed && l.active == 0 && !l.shut
	l.shut = l.shut || shut
	l.mu.Unlock()
	if shut {
		l.shutdown()
	}
}

// shutdown closes the transport (waiting for its packet loop) and socket.
func (l *quicListener) shutdown() {
	_ = l.tr.Close()
	_ = l.udp.Close()
}

// Close stops accepting; see ListenQUIC. Idempotent.
func (l *quicListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	err := l.ln.Close() // returns once handshakes in flight are refused
	for {               // connections handshaken but never accepted
		qc, err := l.ln.Accept(context.Background())
		if err != nil {
			break
		}
		_ = qc.CloseWithError(quicCodeRefused, "listener closed")
	}
	l.mu.Lock()
	shut := l.active == 0 && !l.shut
	l.shut = l.shut || shut
	l.mu.Unlock()
	if shut {
		l.shutdown()
	}
	return err
}

func (l *quicListener) Addr() net.Addr { return l.udp.LocalAddr() }

// DialQUIC connects to an MQTT-over-QUIC server at addr ("host:port") and
// opens the connection's stream. tlsConf (nil: defaults; copied) gets ALPN
// "mqtt" unless it names protocols, and TLS 1.3. ctx bounds the handshake
// and the opening of the stream. The connection sends keepalive PINGs every
// QUICKeepAlivePeriod.
//
// The server learns of the stream only when the first byte is written on it,
// so the caller writes first (MQTT's CONNECT does). Close is as for accepted
// connections (FIN, linger, close); it also releases the UDP socket.
func DialQUIC(ctx context.Context, addr string, tlsConf *tls.Config) (net.Conn, error) {
	var conf *tls.Config
	if tlsConf == nil {
		conf = &tls.Config{}
	} else {
		conf = tlsConf.Clone()
	}
	if len(conf.NextProtos) == 0 {
		conf.NextProtos = []string{QUICALPN}
	}
	qc, err := quic.DialAddr(ctx, addr, conf, &quic.Config{
		MaxIdleTimeout:        QUICMaxIdleTimeout,
		KeepAlivePeriod:       QUICKeepAlivePeriod,
		MaxIncomingStreams:    -1, // the server opens none
		MaxIncomingUniStreams: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("quic dial %s: %w", addr, err)
	}
	s, err := qc.OpenStreamSync(ctx)
	if err != nil {
		_ = qc.CloseWithError(quicCodeNormal, "")
		return nil, fmt.Errorf("quic dial %s: open stream: %w", addr, err)
	}
	c := newQUICConn(qc, time.Time{})
	c.str.Store(s)
	return c, nil
}

// quicConn is one QUIC connection carrying one stream, as a net.Conn.
type quicConn struct {
	conn     *quic.Conn
	deadline time.Time // by which the peer must open the stream (accepted conns)

	str      atomic.Pointer[quic.Stream] // set once, under mu
	acceptMu sync.Mutex                  // serializes waiting for the stream
	writeMu  sync.Mutex                  // Write vs the FIN sent by Close
	failed   atomic.Bool                 // a Write failed: nothing more will be delivered

	mu     sync.Mutex
	rd, wd time.Time          // deadlines set before the stream existed
	cancel context.CancelFunc // interrupts a pending AcceptStream
	err    error              // sticky failure to get the stream

	peerDone chan struct{} // closed when a Read saw the end of the peer's side
	peerOnce sync.Once
	once     sync.Once // Close
}

func newQUICConn(qc *quic.Conn, deadline time.Time) *quicConn {
	return &quicConn{conn: qc, deadline: deadline, peerDone: make(chan struct{})}
}

func (c *quicConn) handshake(timeout time.Duration) error {
	d := c.deadline
	if timeout > 0 {
		d = time.Now().Add(timeout)
	}
	if _, err := c.acceptStream(d); err != nil {
		_ = c.conn.CloseWithError(quicCodeNoStream, "no stream opened")
		return err
	}
	return nil
}

// stream returns the connection's stream, waiting for it (until the
// accept-time deadline) if Handshake has not run.
func (c *quicConn) stream() (*quic.Stream, error) {
	if s := c.str.Load(); s != nil {
		return s, nil
	}
	return c.acceptStream(c.deadline)
}

func (c *quicConn) acceptStream(deadline time.Time) (*quic.Stream, error) {
	c.acceptMu.Lock()
	defer c.acceptMu.Unlock()
	if s := c.str.Load(); s != nil {
		return s, nil
	}
	c.mu.Lock()
	if c.err != nil {
		defer c.mu.Unlock()
		return nil, c.err
	}
	if !c.rd.IsZero() && (deadline.IsZero() || c.rd.Before(deadline)) {
		deadline = c.rd
	}
	ctx, cancel := context.WithCancel(c.conn.Context())
	if !deadline.IsZero() {
		ctx, cancel = context.WithDeadline(c.conn.Context(), deadline)
	}
	c.cancel = cancel
	c.mu.Unlock()

	s, err := c.conn.AcceptStream(ctx)
	cancel()

	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancel = nil
	if err != nil {
		if ctx.Err() != nil && c.conn.Context().Err() == nil {
			err = os.ErrDeadlineExceeded // our deadline or Close, not the connection's end
		}
		if c.err == nil {
			c.err = fmt.Errorf("quic: accept stream: %w", err)
		}
		return nil, c.err
	}
	if !c.rd.IsZero() {
		_ = s.SetReadDeadline(c.rd)
	}
	if !c.wd.IsZero() {
		_ = s.SetWriteDeadline(c.wd)
	}
	c.str.Store(s)
	return s, nil
}

func (c *quicConn) tlsState() (tls.ConnectionState, bool) {
	st := c.conn.ConnectionState().TLS
	return st, st.HandshakeComplete
}

// Read reads from the stream. The peer's FIN reads as io.EOF; a connection
// closed before the FIN arrived reads as the close error (a
// *quic.ApplicationError, say), never as io.EOF, so a truncated stream is
// not mistaken for a finished one.
func (c *quicConn) Read(p []byte) (int, error) {
	s, err := c.stream()
	if err != nil {
		return 0, err
	}
	n, err := s.Read(p)
	if err != nil {
		c.peerOnce.Do(func() { close(c.peerDone) })
	}
	return n, err
}

func (c *quicConn) Write(p []byte) (int, error) {
	s, err := c.stream()
	if err != nil {
		return 0, err
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	n, err := s.Write(p)
	if err != nil {
		c.failed.Store(true)
	}
	return n, err
}

// Close sends FIN after the data written so far, waits up to
// QUICCloseLinger for the peer to finish or close (so that data is not
// discarded), then closes the QUIC connection with application error 0. A
// blocked Write is interrupted first. After a failed Write (a write timeout:
// the peer does not read) it closes at once, without FIN or linger.
// Idempotent; only the first call waits.
func (c *quicConn) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		if c.cancel != nil {
			c.cancel()
		}
		if c.err == nil && c.str.Load() == nil {
			c.err = net.ErrClosed
		}
		c.mu.Unlock()
		if s := c.str.Load(); s != nil && !c.failed.Load() {
			_ = s.SetWriteDeadline(aLongTimeAgo) // unblock a Write; queued data stays queued
			c.writeMu.Lock()
			err := s.Close()
			c.writeMu.Unlock()
			if err == nil && !c.failed.Load() {
				c.linger()
			}
		}
		_ = c.conn.CloseWithError(quicCodeNormal, "")
	})
	return nil
}

func (c *quicConn) linger() {
	t := time.NewTimer(QUICCloseLinger)
	defer t.Stop()
	select {
	case <-c.peerDone:
	case <-c.conn.Context().Done():
	case <-t.C:
	}
}

func (c *quicConn) LocalAddr() net.Addr  { return c.conn.LocalAddr() }
func (c *quicConn) RemoteAddr() net.Addr { return c.conn.RemoteAddr() }

// SetDeadline sets both deadlines; see SetReadDeadline.
func (c *quicConn) SetDeadline(t time.Time) error {
	if s := c.str.Load(); s != nil {
		return s.SetDeadline(t)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.str.Load(); s != nil {
		return s.SetDeadline(t)
	}
	c.rd, c.wd = t, t
	c.interruptIfPast(t)
	return nil
}

// SetReadDeadline sets the stream's read deadline. Before the stream exists
// it is remembered and applied to it; a deadline in the past also ends a
// pending wait for the stream.
func (c *quicConn) SetReadDeadline(t time.Time) error {
	if s := c.str.Load(); s != nil {
		return s.SetReadDeadline(t)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.str.Load(); s != nil {
		return s.SetReadDeadline(t)
	}
	c.rd = t
	c.interruptIfPast(t)
	return nil
}

// SetWriteDeadline sets the stream's write deadline; see SetReadDeadline.
func (c *quicConn) SetWriteDeadline(t time.Time) error {
	if s := c.str.Load(); s != nil {
		return s.SetWriteDeadline(t)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.str.Load(); s != nil {
		return s.SetWriteDeadline(t)
	}
	c.wd = t
	c.interruptIfPast(t)
	return nil
}

// interruptIfPast cancels a pending AcceptStream if t has passed. Under mu.
func (c *quicConn) interruptIfPast(t time.Time) {
	if c.cancel != nil && !t.IsZero() && !t.After(time.Now()) {
		c.cancel()
	}
}
