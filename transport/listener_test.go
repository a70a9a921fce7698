package transport

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// Past MaxConns a connection is refused by closing it at once, and counted;
// a freed slot is reused.
func TestServerLimitRefuses(t *testing.T) {
	l, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{MaxConns: 2, Handle: noPark(func(c net.Conn) {
		_, _ = io.Copy(io.Discard, c) // until the client closes
	})}
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()

	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	waitFor := func(what string, cond func(ServerStats) bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond(s.Stats()) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s: %+v", what, s.Stats())
			}
			time.Sleep(time.Millisecond)
		}
	}
	refusedEOF := func(c net.Conn) {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("refused connection: read = %v, want EOF or reset", err)
		}
	}

	a, b := dial(), dial()
	waitFor("two active", func(st ServerStats) bool { return st.Active == 2 })
	c := dial()
	refusedEOF(c)
	c.Close()
	if st := s.Stats(); st.Refused != 1 || st.Accepted != 2 {
		t.Fatalf("stats %+v: want 1 refused, 2 accepted", st)
	}

	a.Close() // frees a slot once its handler returns
	waitFor("slot freed", func(st ServerStats) bool { return st.Active == 1 })
	d := dial()
	waitFor("slot reused", func(st ServerStats) bool { return st.Accepted == 3 && st.Active == 2 })

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve = %v after Close, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	if err := s.Serve(l); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Close = %v", err)
	}
	b.Close()
	d.Close()
	s.Wait()
	if st := s.Stats(); st.Active != 0 || st.Refused != 1 || st.Accepted != 3 {
		t.Errorf("final stats %+v", st)
	}
}

// fakeListener yields scripted accept results, then blocks until Close.
type fakeListener struct {
	mu      sync.Mutex
	results []fakeAccept
	closed  chan struct{}
	once    sync.Once
}

type fakeAccept struct {
	c   net.Conn
	err error
}

func newFakeListener(r ...fakeAccept) *fakeListener {
	return &fakeListener{results: r, closed: make(chan struct{})}
}

func (l *fakeListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.results) > 0 {
		r := l.results[0]
		l.results = l.results[1:]
		l.mu.Unlock()
		return r.c, r.err
	}
	l.mu.Unlock()
	<-l.closed
	return nil, net.ErrClosed
}

func (l *fakeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1883} }

type tempErr struct{}

func (tempErr) Error() string   { return "too many open files (test)" }
func (tempErr) Temporary() bool { return true }
func (tempErr) Timeout() bool   { return false }

// Temporary accept errors back off 5ms, 10ms, 20ms, ... (capped at 1s) and
// the loop keeps serving; a permanent error ends Serve.
func TestServeBacksOffOnTemporaryErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, peer := net.Pipe()
		defer peer.Close()
		var script []fakeAccept
		for range 10 {
			script = append(script, fakeAccept{err: &net.OpError{Op: "accept", Net: "tcp", Err: tempErr{}}})
		}
		script = append(script, fakeAccept{c: c})
		l := newFakeListener(script...)
		handled := make(chan net.Conn, 1)
		s := &Server{Handle: noPark(func(c net.Conn) { handled <- c })}
		start := time.Now()
		served := make(chan error, 1)
		go func() { served <- s.Serve(l) }()
		got := <-handled
		// 5+10+20+40+80+160+320+640+1000+1000 ms of backoff, in fake time.
		if elapsed, want := time.Since(start), 3275*time.Millisecond; elapsed != want {
			t.Errorf("backoff took %v, want %v", elapsed, want)
		}
		if got != c {
			t.Error("handler got another conn")
		}
		if st := s.Stats(); st.AcceptErrors != 10 || st.Accepted != 1 {
			t.Errorf("stats %+v", st)
		}
		s.Close()
		if err := <-served; err != nil {
			t.Errorf("Serve = %v", err)
		}
		s.Wait()

		// A permanent error is returned.
		l2 := newFakeListener(fakeAccept{err: errors.New("bad fd")})
		if err := (&Server{Handle: noPark(func(net.Conn) {})}).Serve(l2); err == nil {
			t.Error("Serve returned nil on a permanent accept error")
		}
	})
}

// Close interrupts a backoff sleep.
func TestServerCloseDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var script []fakeAccept
		for range 100 {
			script = append(script, fakeAccept{err: tempErr{}})
		}
		l := newFakeListener(script...)
		s := &Server{Handle: noPark(func(net.Conn) {})}
		served := make(chan error, 1)
		go func() { served <- s.Serve(l) }()
		time.Sleep(2 * time.Second) // deep into 1s backoffs
		start := time.Now()
		s.Close()
		if err := <-served; err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("Serve returned %v after Close, want at once", d)
		}
	})
}

// A panicking handler closes its connection only; the loop keeps serving.
func TestServerHandlerPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c1, p1 := net.Pipe()
		c2, p2 := net.Pipe()
		defer p2.Close()
		l := newFakeListener(fakeAccept{c: c1}, fakeAccept{c: c2})
		second := make(chan struct{})
		s := &Server{Handle: noPark(func(c net.Conn) {
			if c == c1 {
				panic("handler bug")
			}
			close(second)
		})}
		served := make(chan error, 1)
		go func() { served <- s.Serve(l) }()
		<-second
		if _, err := p1.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("panicked handler's conn: read = %v, want EOF", err)
		}
		s.Close()
		<-served
		s.Wait()
		if st := s.Stats(); st.Panics != 1 || st.Active != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}
