package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Listener yields connections that are ordered byte streams. TCP, TLS,
// WebSocket and QUIC listeners all implement it, so the protocol layer above
// is the same for each. *net.TCPListener satisfies it.
type Listener interface {
	// Accept waits for and returns the next connection. After Close it
	// returns an error matching net.ErrClosed.
	Accept() (net.Conn, error)
	// Close stops the listener; connections already accepted stay open.
	Close() error
	Addr() net.Addr
}

// TCP keepalive of accepted connections: a peer that vanished without a FIN
// (power loss, NAT drop) is detected after about Idle + Interval*Count even
// when MQTT keepalive is off.
const (
	TCPKeepAliveIdle     = 30 * time.Second
	TCPKeepAliveInterval = 10 * time.Second
	TCPKeepAliveCount    = 3
)

// Accept-loop backoff on temporary errors (EMFILE, ENFILE, ...), as net/http.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// ListenTCP listens on bind ("host:port"; ":1883"; "127.0.0.1:0"). Accepted
// connections have TCP_NODELAY set (Go's default; see SetNoDelay) and
// keepalive configured with TCPKeepAliveIdle, TCPKeepAliveInterval and
// TCPKeepAliveCount.
func ListenTCP(bind string) (Listener, error) {
	lc := net.ListenConfig{KeepAliveConfig: net.KeepAliveConfig{
		Enable:   true,
		Idle:     TCPKeepAliveIdle,
		Interval: TCPKeepAliveInterval,
		Count:    TCPKeepAliveCount,
	}}
	ln, err := lc.Listen(context.Background(), "tcp", bind)
	if err != nil {
		return nil, err // a *net.OpError already names the operation and address
	}
	return &tcpListener{TCPListener: ln.(*net.TCPListener)}, nil
}

// tcpListener is ListenTCP's Listener, and the socket under the TLS and
// WebSocket listeners.
type tcpListener struct {
	*net.TCPListener
	nagle atomic.Bool // clear TCP_NODELAY on accepted connections: SetNoDelay(l, false)
}

// Accept implements net.Listener.
func (l *tcpListener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	if l.nagle.Load() {
		// An error means the connection is dead already; its first read
		// says so.
		_ = c.SetNoDelay(false)
	}
	return c, nil
}

// SetNoDelay sets whether connections that l (a TCP, TLS or WebSocket
// listener of this package) accepts from now on have TCP_NODELAY. With it
// (the default, as in Go and EMQX) every write is sent at once; without it
// (Mosquitto's default) Nagle's algorithm holds a small write back until the
// data before it is acknowledged, so fewer, fuller segments go out, at the
// cost of latency. QUIC has no such option: an error.
func SetNoDelay(l Listener, on bool) error {
	switch x := l.(type) {
	case *tcpListener:
		x.nagle.Store(!on)
		return nil
	case *tlsListener:
		return SetNoDelay(x.tcp, on)
	case *wsListener:
		return SetNoDelay(x.tcp, on)
	}
	return fmt.Errorf("transport: %T has no TCP_NODELAY", l)
}

// Server is an accept loop with a connection limit shared by every listener
// it serves. Set the exported fields before the first Serve and do not
// change them afterwards.
type Server struct {
	// MaxConns limits the connections handled at once across all listeners
	// of this Server; past it a new connection is refused by closing it
	// immediately (counted by Refused). Zero means no limit.
	MaxConns int

	// Handle serves one connection. It runs in its own goroutine, owned by
	// the Server, and typically runs the connection's read loop. It returns
	// nil when the connection is finished: the Server then closes c and
	// frees its slot. Or it parks the connection (see Park) by returning a
	// *Park: c stays open and keeps its slot with no goroutine until it is
	// readable or woken, and the Park's resume continues as the handler.
	// The Server recovers a panic in a handler (closing that connection
	// only).
	Handle func(c net.Conn) *Park

	// Logger receives temporary accept errors and recovered Handle panics.
	// Nil means no logging; the counters still count.
	Logger *slog.Logger

	mu        sync.Mutex
	listeners []Listener
	closed    bool
	stop      chan struct{} // closed by Close; made on first use

	handlers  sync.WaitGroup // connections not finished, parked ones included
	poller    *poller        // started by the first Park; stopped by Wait
	pollerErr error          // the poller could not start: nothing parks

	active       atomic.Int64
	accepted     atomic.Int64
	refused      atomic.Int64
	acceptErrors atomic.Int64
	panics       atomic.Int64
}

// ErrServerClosed is returned by Serve when it is called after Close.
var ErrServerClosed = errors.New("transport: server closed")

// Serve accepts connections from l until l is closed (by Server.Close or
// directly), then returns nil. It backs off on temporary accept errors,
// from 5ms doubling to 1s, and returns any other accept error. Serve may run
// concurrently for several listeners. It does not wait for handlers; see
// Wait.
func (s *Server) Serve(l Listener) error {
	if s.Handle == nil {
		return errors.New("transport: serve: nil Handle")
	}
	stop, ok := s.track(l)
	if !ok {
		_ = l.Close()
		return ErrServerClosed
	}
	defer s.untrack(l)
	var delay time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.isClosed() {
				return nil
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, acceptBackoffMin), acceptBackoffMax)
				s.acceptErrors.Add(1)
				if s.Logger != nil {
					s.Logger.Warn("accept failed; backing off",
						slog.String("listener", l.Addr().String()),
						slog.Duration("delay", delay),
						slog.Any("err", err))
				}
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-stop:
					t.Stop()
					return nil
				}
				continue
			}
			return fmt.Errorf("accept %s: %w", l.Addr(), err)
		}
		delay = 0
		if !s.acquire() {
			s.refused.Add(1)
			_ = c.Close()
			continue
		}
		s.accepted.Add(1)
		s.handlers.Add(1)
		go s.serveConn(c)
	}
}

// serveConn is the goroutine of one accepted connection.
func (s *Server) serveConn(c net.Conn) {
	s.run(c, func() *Park { return s.Handle(c) })
}

// run is the goroutine of a connection's handler: Handle, or the resume of
// a Park. Owner: the Server. Exit: the handler returned a Park that is now
// armed (the poller starts the next run), or the connection is finished
// (the handler returned nil or panicked): then c is closed and its slot
// freed.
func (s *Server) run(c net.Conn, h func() *Park) {
	for {
		p, ok := s.call(c, h)
		if !ok || p == nil {
			_ = c.Close()
			s.active.Add(-1)
			s.handlers.Done()
			return
		}
		if p.arm() {
			return // parked: no goroutine until it is readable or woken
		}
		h = p.resume // woken before it was armed: go on here
	}
}

// call runs one handler, recovering a panic (ok false).
func (s *Server) call(c net.Conn, h func() *Park) (p *Park, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			ok = false
			s.panics.Add(1)
			if s.Logger != nil {
				s.Logger.Error("connection handler panicked; connection closed",
					slog.String("remote", c.RemoteAddr().String()),
					slog.Any("reason", r))
			}
		}
	}()
	return h(), true
}

// acquire takes a connection slot.
func (s *Server) acquire() bool {
	for {
		n := s.active.Load()
		if s.MaxConns > 0 && n >= int64(s.MaxConns) {
			return false
		}
		if s.active.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (s *Server) track(l Listener) (stop <-chan struct{}, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	if s.stop == nil {
		s.stop = make(chan struct{})
	}
	s.listeners = append(s.listeners, l)
	return s.stop, true
}

func (s *Server) untrack(l Listener) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.listeners {
		if x == l {
			s.listeners = append(s.listeners[:i], s.listeners[i+1:]...)
			break
		}
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Close closes every listener being served and makes each Serve return,
// even one sleeping in backoff. Connections already accepted stay open; the
// owner closes them and then calls Wait. Close is idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ls := s.listeners
	s.listeners = nil
	if s.stop != nil {
		close(s.stop)
	}
	s.mu.Unlock()
	var errs []error
	for _, l := range ls {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Wait blocks until every connection is finished (its handler returned nil;
// a parked connection is not finished), then stops the poller if Park
// started one. Call it after the Serve calls have returned.
func (s *Server) Wait() {
	s.handlers.Wait()
	s.mu.Lock()
	pl := s.poller
	s.poller = nil
	s.mu.Unlock()
	if pl != nil {
		pl.close()
	}
}

// ServerStats is a snapshot of a Server's counters.
type ServerStats struct {
	Active       int64 // connections being handled now
	Accepted     int64 // connections handed to Handle in total
	Refused      int64 // connections closed at once for the MaxConns limit
	AcceptErrors int64 // temporary accept errors (each followed by a backoff)
	Panics       int64 // recovered Handle panics
}

// Stats returns the counters.
func (s *Server) Stats() ServerStats {
	return ServerStats{
		Active:       s.active.Load(),
		Accepted:     s.accepted.Load(),
		Refused:      s.refused.Load(),
		AcceptErrors: s.acceptErrors.Load(),
		Panics:       s.panics.Load(),
	}
}
