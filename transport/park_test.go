package transport

import (
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// A parked connection has no goroutine; its resume runs when the peer
// writes, again after each park, and on Wake; Wait stops the poller (the
// leak check in TestMain verifies its goroutine is gone).
func TestParkResume(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("parking needs epoll")
	}
	l, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{}
	events := make(chan string, 16)
	parks := make(chan *Park, 16)
	var running atomic.Int32 // handlers running now
	var woken atomic.Bool
	var serve func(c net.Conn) *Park
	serve = func(c net.Conn) *Park {
		running.Add(1)
		defer running.Add(-1)
		if woken.Load() {
			events <- "woken"
			return nil
		}
		buf := make([]byte, 16)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			events <- "read: " + err.Error()
			return nil
		}
		events <- string(buf[:n])
		p, err := s.Park(c, func() *Park { return serve(c) })
		if err != nil {
			t.Errorf("Park: %v", err)
			return nil
		}
		parks <- p
		return p
	}
	s.Handle = serve
	go s.Serve(l)
	cli, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for _, msg := range []string{"a", "b", "c"} {
		if _, err := cli.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		if got := <-events; got != msg {
			t.Fatalf("handler saw %q, want %q", got, msg)
		}
		<-parks
	}
	// Parked: no handler runs, the connection keeps its slot.
	for running.Load() != 0 {
		runtime.Gosched()
	}
	if st := s.Stats(); st.Active != 1 {
		t.Errorf("parked connection: active %d, want 1", st.Active)
	}
	// Wake resumes without data; this resume finishes the connection.
	cli.Write([]byte("d"))
	if got := <-events; got != "d" {
		t.Fatalf("handler saw %q, want d", got)
	}
	p := <-parks
	woken.Store(true)
	p.Wake()
	p.Wake() // idempotent
	if got := <-events; got != "woken" {
		t.Fatalf("after Wake: %q", got)
	}
	if _, err := cli.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Errorf("client read after the handler finished: %v, want EOF", err)
	}
	s.Close()
	s.Wait()
	if st := s.Stats(); st.Active != 0 {
		t.Errorf("after Wait: active %d", st.Active)
	}
}

// A peer that hangs up while parked resumes the handler, which sees EOF.
func TestParkPeerClose(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("parking needs epoll")
	}
	l, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{}
	parked := make(chan struct{})
	eof := make(chan error, 1)
	s.Handle = func(c net.Conn) *Park {
		p, err := s.Park(c, func() *Park {
			_, err := c.Read(make([]byte, 1))
			eof <- err
			return nil
		})
		if err != nil {
			t.Error(err)
			return nil
		}
		close(parked)
		return p
	}
	go s.Serve(l)
	cli, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	<-parked
	cli.Close()
	if err := <-eof; !errors.Is(err, io.EOF) {
		t.Errorf("resumed read: %v, want EOF", err)
	}
	s.Close()
	s.Wait()
}

// Only kernel sockets park.
func TestParkNotParkable(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	s := &Server{}
	if _, err := s.Park(a, nil); !errors.Is(err, ErrNotParkable) {
		t.Errorf("Park(pipe) = %v, want ErrNotParkable", err)
	}
	s.Wait()
}

// WakeAt: the poller wakes each park at its deadline, not before, in
// deadline order whatever the order they were parked in; a park resumed
// by data before its deadline is not woken again by it.
func TestParkWakeAt(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("parking needs epoll")
	}
	l, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{}
	start := time.Now()
	type resumed struct {
		i   int
		at  time.Duration
		err error
	}
	got := make(chan resumed, 16)
	var n atomic.Int32
	// Connection i parks until start + (4-i)*100ms: the later ones park
	// first. Connection 4 has a deadline too but gets data first.
	s.Handle = func(c net.Conn) *Park {
		i := int(n.Add(1)) - 1
		p, err := s.Park(c, func() *Park {
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			_, err := c.Read(make([]byte, 1))
			got <- resumed{i, time.Since(start), err}
			return nil
		})
		if err != nil {
			t.Error(err)
			return nil
		}
		if i < 4 {
			p.WakeAt(start.Add(time.Duration(400-100*i) * time.Millisecond))
		} else {
			p.WakeAt(start.Add(300 * time.Millisecond))
		}
		return p
	}
	go s.Serve(l)
	var clis []net.Conn
	for i := 0; i < 5; i++ {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clis = append(clis, c)
		for int(n.Load()) != i+1 {
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(20 * time.Millisecond)
	clis[4].Write([]byte("x"))
	r := <-got
	if r.i != 4 || r.err != nil || r.at > 250*time.Millisecond {
		t.Fatalf("first resume %+v, want connection 4 with its data, before the deadlines", r)
	}
	for want := 3; want >= 0; want-- {
		r := <-got
		due := time.Duration(400-100*want) * time.Millisecond
		if r.i != want || r.at < due || r.at > due+150*time.Millisecond {
			t.Fatalf("resume %+v, want connection %d at %v", r, want, due)
		}
		if !errors.Is(r.err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection %d resumed with %v, want no data", r.i, r.err)
		}
	}
	select {
	case r := <-got:
		t.Fatalf("resumed again: %+v", r)
	case <-time.After(150 * time.Millisecond):
	}
	s.Close()
	s.Wait()
}
