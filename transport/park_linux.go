package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// poller watches parked connections with one epoll instance and one
// goroutine. Each parked socket is registered level-triggered with
// EPOLLONESHOT, next to the Go runtime's own (edge-triggered) registration
// of the same socket, and removed when it fires or is woken.
type poller struct {
	epfd int
	evfd int // eventfd: written by close to stop the loop

	mu     sync.Mutex
	next   uint64
	parked map[uint64]*Park
	closed bool
	done   chan struct{} // closed when the loop has exited
}

// havePoller: Park works on this platform.
const havePoller = true

// tokenStop is the eventfd's token; parks get tokens from 1.
const tokenStop = 0

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	evfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setToken(&ev, tokenStop)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &ev); err != nil {
		unix.Close(evfd)
		unix.Close(epfd)
		return nil, fmt.Errorf("epoll_ctl eventfd: %w", err)
	}
	p := &poller{epfd: epfd, evfd: evfd, parked: map[uint64]*Park{}, done: make(chan struct{})}
	go p.loop()
	return p, nil
}

func setToken(ev *unix.EpollEvent, t uint64) {
	ev.Fd, ev.Pad = int32(uint32(t)), int32(uint32(t>>32))
}

func token(ev *unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// arm registers p's socket. Called with p.mu held.
func (pl *poller) arm(p *Park) error {
	pl.mu.Lock()
	if pl.closed {
		pl.mu.Unlock()
		return errors.New("transport: poller closed")
	}
	pl.next++
	p.token = pl.next
	pl.parked[p.token] = p
	pl.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT}
	setToken(&ev, p.token)
	var err error
	cerr := p.raw.Control(func(fd uintptr) {
		err = unix.EpollCtl(pl.epfd, unix.EPOLL_CTL_ADD, int(fd), &ev)
		if errors.Is(err, unix.EEXIST) {
			err = unix.EpollCtl(pl.epfd, unix.EPOLL_CTL_MOD, int(fd), &ev)
		}
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		pl.mu.Lock()
		delete(pl.parked, p.token)
		pl.mu.Unlock()
	}
	return err
}

// disarm removes p's registration. A socket closed meanwhile is gone from
// the epoll set already; the errors are of no interest.
func (pl *poller) disarm(p *Park) {
	pl.mu.Lock()
	delete(pl.parked, p.token)
	pl.mu.Unlock()
	_ = p.raw.Control(func(fd uintptr) {
		_ = unix.EpollCtl(pl.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
}

// loop is the poller's goroutine. Owner: the Server. Exit: close.
func (pl *poller) loop() {
	defer close(pl.done)
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(pl.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			pl.fail()
			return
		}
		for i := range n {
			t := token(&events[i])
			if t == tokenStop {
				return
			}
			pl.mu.Lock()
			p := pl.parked[t]
			pl.mu.Unlock()
			if p != nil {
				p.fire()
			}
		}
	}
}

// fail wakes every parked connection after epoll failed: they fall back to
// their goroutines, since arm fails from now on.
func (pl *poller) fail() {
	pl.mu.Lock()
	pl.closed = true
	ps := make([]*Park, 0, len(pl.parked))
	for _, p := range pl.parked {
		ps = append(ps, p)
	}
	pl.mu.Unlock()
	for _, p := range ps {
		p.Wake()
	}
}

// close stops the loop and releases the descriptors. Parked connections are
// woken first, so nothing stays parked on a closed poller.
func (pl *poller) close() {
	pl.fail()
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(pl.evfd, one[:])
	<-pl.done
	unix.Close(pl.evfd)
	unix.Close(pl.epfd)
}
