package transport

import (
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// poller watches parked connections with one epoll instance and one
// goroutine. Each parked socket is registered level-triggered with
// EPOLLONESHOT, next to the Go runtime's own (edge-triggered) registration
// of the same socket, and removed when it fires or is woken. It also keeps
// the parks' deadlines (Park.WakeAt) in a heap and wakes each one that
// passes: the epoll wait ends at the earliest.
type poller struct {
	epfd int
	evfd int // eventfd: written by close to stop the loop, by arm to make it look at the heap again

	mu     sync.Mutex
	next   uint64
	parked map[uint64]*Park
	timers parkHeap // armed parks with a deadline, earliest first
	until  int64    // when the loop's current wait ends (monoNow clock); 0: no deadline
	closed bool
	done   chan struct{} // closed when the loop has exited
}

// parkHeap orders parks by deadline (container/heap).
type parkHeap []*Park

func (h parkHeap) Len() int           { return len(h) }
func (h parkHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h parkHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *parkHeap) Push(x any) {
	p := x.(*Park)
	p.hidx = len(*h)
	*h = append(*h, p)
}
func (h *parkHeap) Pop() any {
	old := *h
	p := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	p.hidx = -1
	return p
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
	poke := false
	if p.deadline != 0 {
		heap.Push(&pl.timers, p)
		// The loop waits past this deadline: make it look again.
		poke = p.hidx == 0 && (pl.until == 0 || p.deadline < pl.until)
	}
	pl.mu.Unlock()
	if poke {
		pl.poke()
	}
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
		pl.forget(p)
	}
	return err
}

// forget drops p from the map and the heap.
func (pl *poller) forget(p *Park) {
	pl.mu.Lock()
	delete(pl.parked, p.token)
	if p.hidx >= 0 {
		heap.Remove(&pl.timers, p.hidx)
	}
	pl.mu.Unlock()
}

// poke makes the loop's epoll wait return.
func (pl *poller) poke() {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(pl.evfd, one[:])
}

// disarm removes p's registration. A socket closed meanwhile is gone from
// the epoll set already; the errors are of no interest.
func (pl *poller) disarm(p *Park) {
	pl.forget(p)
	_ = p.raw.Control(func(fd uintptr) {
		_ = unix.EpollCtl(pl.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
}

// loop is the poller's goroutine. Owner: the Server. Exit: close.
func (pl *poller) loop() {
	defer close(pl.done)
	events := make([]unix.EpollEvent, 128)
	var due []*Park
	for {
		n, err := unix.EpollWait(pl.epfd, events, pl.timeout())
		if err != nil && !errors.Is(err, unix.EINTR) {
			pl.fail()
			return
		}
		for i := range n {
			t := token(&events[i])
			if t == tokenStop {
				pl.mu.Lock()
				closed := pl.closed
				pl.mu.Unlock()
				if closed {
					return
				}
				var buf [8]byte
				_, _ = unix.Read(pl.evfd, buf[:]) // a poke: look at the heap again
				continue
			}
			pl.mu.Lock()
			p := pl.parked[t]
			pl.mu.Unlock()
			if p != nil {
				p.fire()
			}
		}
		// Wake the parks whose deadline passed.
		now := monoNow()
		pl.mu.Lock()
		for len(pl.timers) > 0 && pl.timers[0].deadline <= now {
			due = append(due, heap.Pop(&pl.timers).(*Park))
		}
		pl.mu.Unlock()
		for i, p := range due {
			p.Wake()
			due[i] = nil
		}
		due = due[:0]
	}
}

// timeout is the loop's next epoll wait in milliseconds, rounded up so
// that no deadline is woken early: until the earliest deadline, or -1.
func (pl *poller) timeout() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if len(pl.timers) == 0 {
		pl.until = 0
		return -1
	}
	pl.until = pl.timers[0].deadline
	d := time.Duration(pl.until - monoNow())
	if d <= 0 {
		return 0
	}
	return int((d + time.Millisecond - 1) / time.Millisecond)
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
	pl.poke()
	<-pl.done
	unix.Close(pl.evfd)
	unix.Close(pl.epfd)
}
