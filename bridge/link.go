package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/nanoactor/nanoactor/config"
	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/transport"
)

// readerSize is the initial buffer of a link's packet reader.
const readerSize = 4 << 10

// clientTLS builds the client TLS configuration of a bridge from its
// [bridge.tls] table; host is the URL's host, the default server name.
func clientTLS(c config.BridgeTLS, host string) (*tls.Config, error) {
	name := c.ServerName
	if name == "" {
		name = host
	}
	return transport.ClientTLSConfig(transport.ClientTLSFiles{CAFile: c.CAFile, CertFile: c.CertFile,
		KeyFile: c.KeyFile, ServerName: name, Insecure: c.InsecureSkipVerify})
}

// dialRemote opens the transport to the remote broker: TCP, TLS over TCP,
// or one QUIC stream. The TLS handshake is done before it returns.
func dialRemote(ctx context.Context, scheme, hostport string, tc *tls.Config) (net.Conn, error) {
	switch scheme {
	case config.BridgeSchemeTCP:
		var d net.Dialer
		return d.DialContext(ctx, "tcp", hostport)
	case config.BridgeSchemeTLS:
		d := tls.Dialer{Config: tc}
		return d.DialContext(ctx, "tcp", hostport)
	case config.BridgeSchemeQUIC:
		return transport.DialQUIC(ctx, hostport, tc)
	}
	return nil, fmt.Errorf("unsupported scheme %q", scheme)
}

// handshake sends c on nc and reads the CONNACK with r, within deadline.
// It returns the CONNACK, detached from the reader's buffer, or an error;
// a refusal is a *refusedError.
func handshake(nc net.Conn, r *protocol.Reader, c *protocol.Connect, deadline time.Time) (*protocol.Connack, error) {
	buf, err := c.Append(nil, c.Level)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(deadline)
	defer nc.SetDeadline(time.Time{})
	if _, err := nc.Write(buf); err != nil {
		return nil, fmt.Errorf("send connect: %w", err)
	}
	h, body, err := r.Next()
	if err != nil {
		return nil, fmt.Errorf("waiting for connack: %w", err)
	}
	if h.Type != protocol.TypeConnack {
		return nil, fmt.Errorf("expected connack, got %v", h.Type)
	}
	ack := new(protocol.Connack)
	if err := ack.Decode(h, append([]byte(nil), body...), c.Level); err != nil {
		return nil, fmt.Errorf("connack: %w", err)
	}
	if ack.Reason != protocol.ReasonSuccess {
		code := byte(ack.Reason)
		if c.Level < protocol.Version5 && len(body) > 1 {
			code = body[1]
		}
		return nil, &refusedError{reason: ack.Reason, code: code, level: c.Level}
	}
	return ack, nil
}

// refusedError is a CONNACK that refused the bridge.
type refusedError struct {
	reason protocol.ReasonCode
	code   byte // as on the wire (3.1.1 return code or v5 reason code)
	level  protocol.Version
}

func (e *refusedError) Error() string {
	if e.level < protocol.Version5 {
		return fmt.Sprintf("connection refused: return code %#02x", e.code)
	}
	return fmt.Sprintf("connection refused: %s (%#02x)", e.reason, e.code)
}

// pipeListener is an in-process transport.Listener: the local side of a
// bridge connects to the broker through it, so the bridge is a client of
// its own broker over the same pipe code as any socket.
type pipeListener struct {
	name   string
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener(name string) *pipeListener {
	return &pipeListener{name: name, conns: make(chan net.Conn), closed: make(chan struct{})}
}

// Accept implements transport.Listener.
func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close implements transport.Listener.
func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

// Addr implements transport.Listener.
func (l *pipeListener) Addr() net.Addr { return pipeAddr(l.name) }

// dial returns the client end of a new in-process connection.
func (l *pipeListener) dial(ctx context.Context) (net.Conn, error) {
	client, server := net.Pipe()
	wrapped := &pipeConn{Conn: server, remote: pipeAddr(l.name)}
	select {
	case l.conns <- wrapped:
		return client, nil
	case <-l.closed:
	case <-ctx.Done():
	}
	client.Close()
	server.Close()
	return nil, errors.New("local broker not accepting")
}

// pipeConn names the bridge as the remote address in the broker's logs.
type pipeConn struct {
	net.Conn
	remote net.Addr
}

func (c *pipeConn) RemoteAddr() net.Addr { return c.remote }

type pipeAddr string

func (a pipeAddr) Network() string { return "bridge" }
func (a pipeAddr) String() string  { return "bridge:" + string(a) }

// credit bounds the bytes a link's reader goroutine has handed to the
// actor and the actor has not finished with: the reader waits for credit
// before handing over a packet, so a fast peer is slowed by TCP instead of
// filling the actor's mailbox.
type credit struct {
	mu     sync.Mutex
	cond   sync.Cond
	used   int64
	limit  int64
	closed bool
}

func newCredit(limit int64) *credit {
	c := &credit{limit: limit}
	c.cond.L = &c.mu
	return c
}

// acquire waits until n bytes fit (one packet always fits when nothing is
// held); false after close.
func (c *credit) acquire(n int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closed && c.used > 0 && c.used+n > c.limit {
		c.cond.Wait()
	}
	if c.closed {
		return false
	}
	c.used += n
	return true
}

func (c *credit) release(n int64) {
	c.mu.Lock()
	c.used -= n
	c.mu.Unlock()
	c.cond.Signal()
}

func (c *credit) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cond.Broadcast()
}
