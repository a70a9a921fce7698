package transport

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// ErrNotParkable is returned by Server.Park for a connection that cannot be
// watched without a goroutine: not a kernel socket (TLS, WebSocket, QUIC,
// pipes), or a platform without a poller. The caller keeps its goroutine and
// reads as before.
var ErrNotParkable = errors.New("transport: connection cannot be parked")

// Park is a connection held open with no goroutine: its Handle returned the
// Park instead of nil. The Server runs resume, in a new goroutine that it
// owns, once the connection has bytes to read (or has hung up or failed), or
// once Wake is called, whichever comes first, and exactly once. resume is
// then the connection's handler, with Handle's contract: it returns nil when
// the connection is finished, or a new Park.
type Park struct {
	s      *Server
	pl     *poller
	c      net.Conn
	raw    syscall.RawConn
	resume func() *Park

	mu    sync.Mutex
	state parkState
	token uint64 // the poller's key while armed

	// Set by WakeAt before the park is armed; the poller's timer heap
	// (hidx is p's index there, -1 when not in it) is under the poller's
	// lock.
	deadline int64 // monoNow clock; 0: none
	hidx     int
}

// parkEpoch is the origin of the package's clock: the parks' deadlines
// and the Outbounds' progress and last-write times.
var parkEpoch = time.Now()

// monoNow is now on the package's clock: nanoseconds since parkEpoch,
// monotonic.
func monoNow() int64 { return int64(time.Since(parkEpoch)) }

type parkState uint8

const (
	parkPreparing parkState = iota // made by Server.Park, its handler not yet returned
	parkWoken                      // Wake came while preparing: resume at once
	parkArmed                      // watched by the poller
	parkFired                      // resume started (or about to)
)

// Parkable reports whether Park can hold c: a kernel TCP or Unix socket of
// package net, on a platform with a poller (Linux). Decide before using a
// short read deadline to detect idleness: on other connections a deadline
// may be costly or, for WebSocket, close the connection.
func Parkable(c net.Conn) bool {
	if !havePoller {
		return false
	}
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
		// A wrapper may hold bytes the kernel no longer has: only the kernel
		// sockets of package net are watched.
		return true
	}
	return false
}

// Park prepares to hold c open with no goroutine until it is readable. The
// handler (Handle, or a resume) makes it take effect by returning the Park;
// until then nothing changes. Wake may be called from any goroutine at any
// time after Park returns, even before the handler has returned (resume then
// runs as soon as it has). A handler calls Park at most once and returns
// what it got, or nil after an error.
//
// Park fails with ErrNotParkable for a connection that is not a kernel
// TCP or Unix socket, or where the platform has no poller.
func (s *Server) Park(c net.Conn, resume func() *Park) (*Park, error) {
	if !Parkable(c) {
		return nil, ErrNotParkable
	}
	pl, err := s.getPoller()
	if err != nil {
		return nil, ErrNotParkable
	}
	raw, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil, ErrNotParkable
	}
	return &Park{s: s, pl: pl, c: c, raw: raw, resume: resume, hidx: -1}, nil
}

// WakeAt makes the park Wake itself at t if nothing resumed it before (the
// owner's own deadline, such as a keepalive). The poller keeps the time:
// a parked connection holds no timer of its own. Call it before the handler
// returns the Park; a zero t means no deadline.
func (p *Park) WakeAt(t time.Time) {
	if t.IsZero() {
		p.deadline = 0
		return
	}
	p.deadline = max(int64(t.Sub(parkEpoch)), 1)
}

// Wake makes the parked connection's resume run now, whether or not the
// connection is readable; the owner calls it when it closes the connection
// or a deadline of its own passes. It is idempotent and never blocks.
func (p *Park) Wake() {
	p.mu.Lock()
	switch p.state {
	case parkPreparing:
		p.state = parkWoken
		p.mu.Unlock()
	case parkArmed:
		p.state = parkFired
		p.mu.Unlock()
		p.pl.disarm(p)
		go p.s.run(p.c, p.resume)
	default:
		p.mu.Unlock()
	}
}

// fire is the poller's Wake: the connection became readable.
func (p *Park) fire() {
	p.Wake()
}

// arm hands p to the poller. It reports false when p must resume at once
// (Wake came first, or the poller failed): the caller runs resume itself.
func (p *Park) arm() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state != parkPreparing {
		p.state = parkFired
		return false
	}
	if err := p.pl.arm(p); err != nil {
		p.state = parkFired
		return false
	}
	p.state = parkArmed
	return true
}

// getPoller returns the Server's poller, starting it on first use. Wait
// stops it once every connection is finished.
func (s *Server) getPoller() (*poller, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.poller != nil {
		return s.poller, nil
	}
	if s.pollerErr != nil {
		return nil, s.pollerErr
	}
	p, err := newPoller()
	if err != nil {
		s.pollerErr = err
		return nil, err
	}
	s.poller = p
	return p, nil
}
