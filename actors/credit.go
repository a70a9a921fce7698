package actors

import (
	"context"
	"sync"
)

// credit bounds the bytes a connection's reader has decoded and handed to
// the actors that they have not processed yet (readerCredit): the reader
// takes each packet's cost before it hands the packet over, the actor (or
// the session) gives it back once done, and the reader waits while the
// bound is reached, so a fast publisher is slowed by TCP. It is what a
// semaphore.Weighted and a cancelable context did, kept in the conn itself:
// one goroutine acquires (the reader), any may release, and cancel ends
// every wait for good (the connection is gone).
type credit struct {
	mu    sync.Mutex
	free  int64         // bytes that may still be taken
	want  int64         // what the waiting Acquire needs; 0: nobody waits
	ready chan struct{} // wakes the waiter; made when the reader first waits
	done  bool          // cancel was called
}

func (c *credit) init(size int64) { c.free = size }

// Acquire takes n bytes of credit, waiting while fewer are free. It fails
// once cancel was called or ctx is done. One goroutine at a time.
func (c *credit) Acquire(ctx context.Context, n int64) error {
	c.mu.Lock()
	for {
		if c.done {
			c.mu.Unlock()
			return context.Canceled
		}
		if n <= c.free {
			c.free -= n
			c.mu.Unlock()
			return nil
		}
		if c.ready == nil {
			c.ready = make(chan struct{}, 1)
		}
		c.want = n
		ready := c.ready
		c.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			c.mu.Lock()
			c.want = 0
			c.mu.Unlock()
			return ctx.Err()
		}
		c.mu.Lock()
	}
}

// Release gives back n bytes taken by Acquire.
func (c *credit) Release(n int64) {
	c.mu.Lock()
	c.free += n
	if c.want > 0 && c.free >= c.want {
		c.wake()
	}
	c.mu.Unlock()
}

// cancel makes the waiting Acquire, and every later one, fail.
func (c *credit) cancel() {
	c.mu.Lock()
	c.done = true
	if c.want > 0 {
		c.wake()
	}
	c.mu.Unlock()
}

// wake lets the waiter look again. Called with mu held.
func (c *credit) wake() {
	c.want = 0
	select {
	case c.ready <- struct{}{}:
	default:
	}
}
