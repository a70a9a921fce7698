package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// WebSocket settings of ListenWS.
const (
	// WSSubprotocol is the WebSocket subprotocol of MQTT [MQTT-6.0.0-3];
	// WSLegacySubprotocol is the one some 3.1 clients still offer. An
	// upgrade offering neither is refused with 400 Bad Request.
	WSSubprotocol       = "mqtt"
	WSLegacySubprotocol = "mqttv3.1"

	// DefaultWSPath is the HTTP path served when ListenWS gets "".
	DefaultWSPath = "/mqtt"

	// WSAcceptBacklog bounds the WebSocket connections upgraded (or being
	// upgraded) but not yet taken by Accept. Past it an upgrade is refused
	// with 503 Service Unavailable before it happens, so a slow accept loop
	// makes clients retry instead of piling up goroutines and sockets.
	WSAcceptBacklog = 128

	// WSCloseTimeout bounds Close of a WebSocket connection: the close
	// handshake (send a close frame, wait for the peer's) gets this long,
	// then the socket is closed regardless. The library alone would wait up
	// to 5s for each half.
	WSCloseTimeout = 2 * time.Second

	// wsMaxHeaderBytes bounds the HTTP upgrade request's headers.
	wsMaxHeaderBytes = 16 << 10
)

// wsListener serves WebSocket upgrades with an http.Server and hands each
// upgraded connection to Accept through a bounded queue.
//
// Goroutines: one running http.Server.Serve, owned by the listener, exits
// when Close closes the server; the http.Server's per-connection goroutines
// exit when their request is done or the connection is hijacked by the
// upgrade (ServeHTTP runs on them; Close waits for every ServeHTTP).
type wsListener struct {
	tcp     Listener // the socket, for SetNoDelay
	addr    net.Addr
	path    string
	timeout time.Duration
	srv     *http.Server
	backlog int64
	linger  time.Duration // WSCloseTimeout; shorter in tests
	conns   chan *wsConn  // capacity backlog
	pending atomic.Int64  // upgrades in progress + connections in conns

	mu       sync.Mutex
	closed   bool           // set by Close; under mu
	handlers sync.WaitGroup // ServeHTTP calls; Add under mu while !closed

	once   sync.Once
	done   chan struct{} // closed by Close or when Serve fails
	err    error         // what Accept returns once done is closed
	served chan struct{} // closed when Serve has returned
}

// ListenWS listens on bind for MQTT over WebSocket: an HTTP server answering
// upgrades on path (DefaultWSPath if "") that offer the subprotocol "mqtt"
// (or "mqttv3.1"); any other path is 404, an upgrade without an MQTT
// subprotocol 400. With tlsConf set (wss; typically CertStore.ServerConfig(),
// copied, TLS 1.2+, ALPN forced to http/1.1) the socket speaks TLS; nil means
// plain ws. Origins are not checked: MQTT authenticates in CONNECT, not with
// cookies.
//
// handshakeTimeout (zero: DefaultHandshakeTimeout) bounds the TLS handshake
// and the reading of the upgrade request each, and the writing of the
// upgrade response; all of it runs on the HTTP server's goroutines, never on
// the goroutine calling Accept. Connections that idle after a non-upgrade
// request are closed after it as well.
//
// Accept returns each upgraded connection as a net.Conn carrying the
// WebSocket's binary messages as one byte stream: an MQTT packet may span
// messages and frames, and a message may hold several packets. There is no
// per-message size limit (websocket.NetConn streams messages and disables
// the library's 32 KiB read limit); the MQTT reader's maximum packet size is
// the bound. A text message fails the connection (close status 1003)
// [MQTT-6.0.0-1]. Each Write is sent as one binary message. RemoteAddr is
// the TCP peer (X-Forwarded-For is ignored). Deadlines work and expire as
// os.ErrDeadlineExceeded, with one difference from a TCP socket: a deadline
// that expires during a blocked Read or Write closes the whole WebSocket.
// Handshake is a no-op for these connections. Close runs the close
// handshake for at most WSCloseTimeout.
//
// Close of the listener shuts the HTTP server down and closes upgraded
// connections not yet accepted; accepted ones stay open.
func ListenWS(bind, path string, tlsConf *tls.Config, handshakeTimeout time.Duration) (Listener, error) {
	return listenWS(bind, path, tlsConf, handshakeTimeout, WSAcceptBacklog)
}

func listenWS(bind, path string, tlsConf *tls.Config, handshakeTimeout time.Duration, backlog int) (Listener, error) {
	if path == "" {
		path = DefaultWSPath
	}
	if !strings.HasPrefix(path, "/") {
		return nil, errors.New("ws: path must start with /")
	}
	var conf *tls.Config
	if tlsConf != nil {
		var err error
		if conf, err = serverConfig(tlsConf, 0, []string{"http/1.1"}); err != nil {
			return nil, err
		}
	}
	tcp, err := ListenTCP(bind)
	if err != nil {
		return nil, err
	}
	var ln net.Listener = tcp
	if conf != nil {
		ln = tls.NewListener(tcp, conf)
	}
	l := &wsListener{
		tcp:     tcp,
		addr:    tcp.Addr(),
		path:    path,
		timeout: orDefault(handshakeTimeout),
		backlog: int64(backlog),
		linger:  WSCloseTimeout,
		conns:   make(chan *wsConn, backlog),
		done:    make(chan struct{}),
		served:  make(chan struct{}),
	}
	l.srv = &http.Server{
		Handler:           l,
		ReadHeaderTimeout: l.timeout, // also bounds the TLS handshake
		IdleTimeout:       l.timeout,
		MaxHeaderBytes:    wsMaxHeaderBytes,
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){}, // no HTTP/2
		ErrorLog:          log.New(io.Discard, "", 0),                               // handshake noise of bad clients
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, rawConnKey{}, c)
		},
	}
	go l.serve(ln)
	return l, nil
}

// rawConnKey keys the accepted socket in an HTTP request's context.
type rawConnKey struct{}

// serve runs the HTTP server. Owner: the listener. Exit: Close (or a fatal
// accept error, which Accept then reports).
func (l *wsListener) serve(ln net.Listener) {
	defer close(l.served)
	err := l.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		err = net.ErrClosed
	}
	l.finish(err)
}

// finish makes Accept return err from now on; the first call wins.
func (l *wsListener) finish(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.done)
	})
}

// ServeHTTP upgrades one request. It runs on an http.Server goroutine.
func (l *wsListener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != l.path {
		http.NotFound(w, r)
		return
	}
	proto := mqttSubprotocol(r.Header)
	if proto == "" {
		http.Error(w, "websocket upgrade must offer subprotocol mqtt", http.StatusBadRequest)
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	l.handlers.Add(1)
	l.mu.Unlock()
	defer l.handlers.Done()
	if l.pending.Add(1) > l.backlog {
		l.pending.Add(-1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many pending connections", http.StatusServiceUnavailable)
		return
	}
	raw, _ := r.Context().Value(rawConnKey{}).(net.Conn)
	if raw != nil {
		_ = raw.SetWriteDeadline(time.Now().Add(l.timeout)) // the 101 response
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:       []string{proto},
		InsecureSkipVerify: true, // no origin check; see ListenWS
		CompressionMode:    websocket.CompressionDisabled,
	})
	if err != nil { // Accept has answered the request
		l.pending.Add(-1)
		return
	}
	tcp := raw
	if raw != nil {
		_ = raw.SetDeadline(time.Time{})
		if tc, ok := raw.(*tls.Conn); ok {
			tcp = tc.NetConn()
		}
	}
	c := &wsConn{
		// The context must outlive the request: r.Context() ends when
		// ServeHTTP returns.
		Conn:   websocket.NetConn(context.Background(), ws, websocket.MessageBinary),
		ws:     ws,
		tcp:    tcp,
		linger: l.linger,
	}
	if r.TLS != nil {
		st := *r.TLS
		c.state = &st
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.pending.Add(-1)
		_ = ws.CloseNow()
		return
	}
	l.conns <- c // never blocks: pending <= backlog = cap(conns)
	l.mu.Unlock()
}

// mqttSubprotocol returns the MQTT subprotocol offered in h, preferring
// WSSubprotocol, or "".
func mqttSubprotocol(h http.Header) string {
	var legacy bool
	for _, v := range h.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			switch strings.TrimSpace(p) {
			case WSSubprotocol:
				return WSSubprotocol
			case WSLegacySubprotocol:
				legacy = true
			}
		}
	}
	if legacy {
		return WSLegacySubprotocol
	}
	return ""
}

// Accept returns the next upgraded connection. It blocks until one is
// ready or the listener is closed (then the error matches net.ErrClosed).
func (l *wsListener) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, l.err
	default:
	}
	select {
	case c := <-l.conns:
		l.pending.Add(-1)
		return c, nil
	case <-l.done:
		return nil, l.err
	}
}

// Close stops accepting, shuts the HTTP server down (closing connections
// still in the HTTP stage), waits for upgrades in progress, and closes
// upgraded connections nobody accepted. Accepted connections stay open.
// Close is idempotent.
func (l *wsListener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.finish(net.ErrClosed)
	err := l.srv.Close()
	<-l.served
	l.handlers.Wait()
	for {
		select {
		case c := <-l.conns:
			l.pending.Add(-1)
			_ = c.ws.CloseNow()
		default:
			if errors.Is(err, net.ErrClosed) {
				err = nil
			}
			return err
		}
	}
}

func (l *wsListener) Addr() net.Addr { return l.addr }

// wsConn is an accepted WebSocket as a byte stream.
//
// websocket.NetConn reports an expired deadline as a context error; wsConn
// remembers its deadlines and reports an error after one has passed as a
// timeout matching os.ErrDeadlineExceeded, as a TCP socket would, so the
// layers above classify it the same on every transport.
type wsConn struct {
	net.Conn                      // websocket.NetConn, binary messages
	ws       *websocket.Conn      // for CloseNow
	tcp      net.Conn             // the socket under it (under TLS for wss)
	state    *tls.ConnectionState // wss only
	linger   time.Duration        // bound of the close handshake
	rd, wd   atomic.Int64         // deadlines, UnixNano; 0 = none
}

func (c *wsConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && expired(&c.rd) {
		err = &wsTimeoutError{op: "read", err: err}
	}
	return n, err
}

func (c *wsConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil && expired(&c.wd) {
		err = &wsTimeoutError{op: "write", err: err}
	}
	return n, err
}

func (c *wsConn) SetDeadline(t time.Time) error {
	store(&c.rd, t)
	store(&c.wd, t)
	return c.Conn.SetDeadline(t)
}

func (c *wsConn) SetReadDeadline(t time.Time) error {
	store(&c.rd, t)
	return c.Conn.SetReadDeadline(t)
}

func (c *wsConn) SetWriteDeadline(t time.Time) error {
	store(&c.wd, t)
	return c.Conn.SetWriteDeadline(t)
}

func store(d *atomic.Int64, t time.Time) {
	if t.IsZero() {
		d.Store(0)
	} else {
		d.Store(t.UnixNano())
	}
}

func expired(d *atomic.Int64) bool {
	ns := d.Load()
	return ns != 0 && time.Now().UnixNano() >= ns
}

// wsTimeoutError is a WebSocket read or write that failed after its
// deadline. It matches os.ErrDeadlineExceeded and the library's error.
type wsTimeoutError struct {
	op  string
	err error
}

func (e *wsTimeoutError) Error() string {
	return "websocket " + e.op + ": " + os.ErrDeadlineExceeded.Error()
}
func (e *wsTimeoutError) Unwrap() []error { return []error{os.ErrDeadlineExceeded, e.err} }
func (e *wsTimeoutError) Timeout() bool   { return true }
func (e *wsTimeoutError) Temporary() bool { return true }

func (c *wsConn) tlsState() (tls.ConnectionState, bool) {
	if c.state == nil {
		return tls.ConnectionState{}, false
	}
	return *c.state, true
}

// Close runs the WebSocket close handshake (status 1000) for at most
// WSCloseTimeout, then closes the socket regardless. Idempotent.
func (c *wsConn) Close() error {
	var t *time.Timer
	if c.tcp != nil {
		t = time.AfterFunc(c.linger, func() { _ = c.tcp.Close() })
		defer t.Stop()
	}
	return c.Conn.Close()
}
