package transport

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitDone fails the test if o's writer has not exited within d (real time).
func waitDone(tb testing.TB, o *Outbound, d time.Duration) {
	tb.Helper()
	select {
	case <-o.Done():
	case <-time.After(d):
		tb.Fatalf("outbound not done after %v (reason %v)", d, o.Reason())
	}
}

// isDone reports whether o's writer has exited.
func isDone(o *Outbound) bool {
	select {
	case <-o.Done():
		return true
	default:
		return false
	}
}

// tcpPair returns the two ends of a loopback TCP connection accepted through
// ListenTCP: srv is the accepted (broker) side, cli the dialled side.
func tcpPair(tb testing.TB) (srv, cli net.Conn) {
	tb.Helper()
	l, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	cli, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		cli.Close()
		tb.Fatal(r.err)
	}
	return r.c, cli
}

// drain reads c until an error and returns the byte count on the channel.
func drain(c net.Conn) <-chan int64 {
	ch := make(chan int64, 1)
	go func() {
		buf := make([]byte, 256<<10)
		var n int64
		for {
			k, err := c.Read(buf)
			n += int64(k)
			if err != nil {
				ch <- n
				return
			}
		}
	}()
	return ch
}

// releaseTracker checks Options.Release: every buffer it is told about
// (Accepted) must be released exactly once, and no other buffer ever.
type releaseTracker struct {
	mu       sync.Mutex
	accepted map[*byte]bool
	released map[*byte]int
	bad      atomic.Int64 // releases of nil or empty buffers
}

func newReleaseTracker() *releaseTracker {
	return &releaseTracker{accepted: map[*byte]bool{}, released: map[*byte]int{}}
}

func (t *releaseTracker) Accepted(b []byte) {
	t.mu.Lock()
	t.accepted[&b[0]] = true
	t.mu.Unlock()
}

func (t *releaseTracker) Release(b []byte) {
	if len(b) == 0 {
		t.bad.Add(1) // the writer lost track of a buffer
		return
	}
	t.mu.Lock()
	t.released[&b[0]]++
	t.mu.Unlock()
}

func (t *releaseTracker) Check(tb testing.TB) {
	tb.Helper()
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := t.bad.Load(); n > 0 {
		tb.Errorf("%d releases of nil or empty buffers", n)
	}
	wrong := 0
	for p := range t.accepted {
		if n := t.released[p]; n != 1 {
			if wrong++; wrong <= 5 {
				tb.Errorf("accepted buffer %p released %d times, want 1", p, n)
			}
		}
	}
	for p, n := range t.released {
		if !t.accepted[p] {
			if wrong++; wrong <= 5 {
				tb.Errorf("buffer %p never accepted but released %d times", p, n)
			}
		}
	}
	if wrong > 5 {
		tb.Errorf("... %d wrong release counts in all", wrong)
	}
}

// countingConn counts Close calls on a net.Conn.
type countingConn struct {
	net.Conn
	closes atomic.Int64
}

func (c *countingConn) Close() error {
	c.closes.Add(1)
	return c.Conn.Close()
}

// errConn is a net.Conn whose Write always fails.
type errConn struct{ net.Conn }

var errBroken = errors.New("broken pipe (test)")

func (errConn) Write([]byte) (int, error) { return 0, errBroken }

// readAllAsync reads c to EOF in the background.
func readAllAsync(c net.Conn) <-chan []byte {
	ch := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(c)
		ch <- b
	}()
	return ch
}

// slowCloseConn is a net.Conn whose Close blocks until unblock is closed, as
// a TLS Close writing close_notify to a peer that does not read.
type slowCloseConn struct {
	net.Conn
	unblock chan struct{}
}

func (c *slowCloseConn) Close() error {
	<-c.unblock
	return c.Conn.Close()
}

// noPark adapts a handler that never parks to Server.Handle.
func noPark(f func(net.Conn)) func(net.Conn) *Park {
	return func(c net.Conn) *Park {
		f(c)
		return nil
	}
}

// closedDeadlineConn is a countingConn whose SetDeadline reports a closed
// connection, as a TCPConn does once its writer has closed it.
type closedDeadlineConn struct{ countingConn }

func (c *closedDeadlineConn) SetDeadline(time.Time) error {
	return &net.OpError{Op: "set", Net: "tcp", Err: net.ErrClosed}
}
