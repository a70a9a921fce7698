package transport

import (
	"errors"
	"io"
	"net"
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
