package transport

import (
	"errors"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Defaults and limits of an Outbound. A zero (or negative) option means its
// default.
const (
	// DefaultMaxPending bounds the bytes one connection may hold accepted
	// but not yet written: 4 MiB.
	DefaultMaxPending = 4 << 20

	// DefaultWriteTimeout is the deadline of one batch write: a peer that
	// takes no bytes for this long is closed with ReasonWriteTimeout.
	DefaultWriteTimeout = 10 * time.Second

	// maxIOV is the number of buffers passed to one vectored write call:
	// IOV_MAX on Linux and Darwin, and the chunk internal/poll uses.
	maxIOV = 1024

	// coalesceSize is the segment size for connections that cannot write
	// vectors (TLS, WebSocket, pipes): small buffers are copied into one
	// segment so that each Write carries many messages.
	coalesceSize = 64 << 10

	// retainBatch is the batch backing array size (in buffers) the writer
	// always keeps for reuse. A bigger one is dropped after shrinkAfter
	// batches in a row that fill less than a quarter of it, so a burst's
	// array does not outlive the burst for long while steady heavy traffic
	// does not reallocate.
	retainBatch = 4096
	shrinkAfter = 64

	// inlineGap: an Enqueue onto an empty queue writes at once, on the
	// caller's goroutine, when the connection's last write began at least
	// this long ago (see writeInline). Closer together, buffers go to the
	// writer goroutine, which batches them into one vectored write.
	inlineGap = 100 * time.Microsecond

	// idleExit is how long a writer goroutine waits for more to write
	// before it exits; the next Enqueue starts another. A busy connection
	// keeps its writer (and its batch arrays); an idle one holds neither.
	idleExit = time.Second
)

// Options configure an Outbound. The zero value is ready to use.
type Options struct {
	// MaxPending bounds, in bytes, what the Outbound holds accepted but not
	// yet written (queued plus in flight). Zero means DefaultMaxPending.
	// One buffer larger than the bound is still accepted when nothing is
	// pending, so a connection can always make progress; the owner's maximum
	// packet size bounds that case.
	MaxPending int

	// WriteTimeout is the write deadline of each batch. Zero means
	// DefaultWriteTimeout. Writes always carry a deadline.
	WriteTimeout time.Duration

	// Release, when set, is called by the writer goroutine exactly once for
	// every accepted buffer, after it was written or discarded (on close),
	// so callers can pool buffers. It is never called for a buffer whose
	// Enqueue returned an error. It must not block: the writer waits for it.
	Release func([]byte)

	// OnClose, when set, is called once when the connection is closed for
	// good (any cause; after a CloseAfter, once the flush has ended), from
	// the goroutine that closes it, before the net.Conn itself is closed.
	// The owner uses it to wake a reader that is not blocked in Read (a
	// parked connection). It must not block.
	OnClose func()

	// Faults is the test-only fault-injection seam; nil in production.
	Faults *FaultPlan
}

// Outbound is the one writer of a connection: a queue of byte buffers,
// bounded in bytes, drained by one writer goroutine that the Outbound starts
// and owns. At each wake-up the writer takes everything queued and writes it
// with one vectored write (net.Buffers) under a per-batch write deadline. No
// lock is held during I/O.
//
// The writer goroutine runs only while the connection is writing: it is
// started when a buffer is queued and none runs, and exits once it has had
// nothing to write for idleExit (1s), so an idle connection holds no
// goroutine and no batch arrays. At most one writer runs at a time, so
// writes stay ordered.
//
// On a kernel TCP or Unix socket (without Release or Faults), an Enqueue
// onto an empty queue, with no write under way and none begun in the last
// inlineGap, makes one non-blocking write itself (writeInline) instead of
// waking the writer; what the socket does not take goes to the writer.
// Only one of the two writes at a time (mu's writing and inline flags).
//
// All methods may be called from any goroutine and none blocks on the
// network. After Close (or a write failure, or a completed CloseAfter) a
// last writer closes the connection and releases what is left; Done is
// closed when it has exited.
type Outbound struct {
	conn     net.Conn
	max      int64
	timeout  time.Duration
	release  func([]byte)
	onClose  func()
	faults   *FaultPlan
	vectored bool

	// wake (capacity 1) says "the queue went non-empty" to a running
	// writer. It is made under mu when the first writer starts and never
	// changes after, so whoever saw running set may use it; a connection
	// whose writes were all inline has none.
	wake     chan struct{}
	quitting atomic.Bool // set once, by closeWith, before it wakes the writer

	mu      sync.Mutex
	state   uint8    // stateOpen → stateDraining → stateClosed, under mu
	queue   [][]byte // accepted, not yet taken by the writer, under mu
	running bool     // a writer goroutine runs (or is starting), under mu
	writing bool     // the writer goroutine has taken a batch it is writing, under mu
	inline  bool     // an Enqueue is writing on its own goroutine (writeInline), under mu
	// done is made by the first Done call (an idle connection holds none)
	// and closed by the last writer goroutine on exit, which sets finished;
	// both under mu.
	done     chan struct{}
	finished bool

	// raw is the socket for inline writes: set for kernel sockets of an
	// Outbound without Release or Faults, nil otherwise.
	raw       syscall.RawConn
	lastWrite atomic.Int64 // monoNow when the last write began

	idleCheck atomic.Bool // the writer's idle timer fired: see run

	cerr atomic.Pointer[CloseError] // first recorded reason; set under mu

	pending  atomic.Int64 // bytes accepted and not yet written or discarded
	progress atomic.Int64 // monoNow of the last write progress

	queued    atomic.Int64 // bytes accepted in total
	written   atomic.Int64 // bytes written in total
	buffers   atomic.Int64 // buffers taken by the writer in total
	batches   atomic.Int64 // batches (writer wake-ups with data)
	writes    atomic.Int64 // write calls (vectored or coalesced)
	maxBatch  atomic.Int64 // most buffers in one batch
	queueFull atomic.Int64 // ErrQueueFull rejections
	inlines   atomic.Int64 // inline writes
}

// writerState is a writer goroutine's own: it lives on that goroutine and
// ends with it, so an Outbound without a writer holds none of it.
type writerState struct {
	iovBack   [][]byte    // backing array of iov, at most maxIOV entries
	iov       net.Buffers // consumed by WriteTo; never appended to directly
	underused int         // batches in a row using < 1/4 of a big array
}

const (
	stateOpen uint8 = iota
	stateDraining
	stateClosed
)

// NewOutbound returns the Outbound of c; its writer goroutine starts with
// the first buffer queued. The Outbound owns c from now on: only its writer
// writes to c or closes it. The caller may still read from c and set read
// deadlines. Once a close is decided, c's deadlines are set in the past, so
// a blocked Read returns at once (the caller then consults Err), and the
// last writer closes c as it exits.
func NewOutbound(c net.Conn, opts Options) *Outbound {
	if c == nil {
		panic("transport: NewOutbound with nil conn")
	}
	o := &Outbound{
		conn:    c,
		max:     int64(opts.MaxPending),
		timeout: opts.WriteTimeout,
		release: opts.Release,
		onClose: opts.OnClose,
		faults:  opts.Faults,
	}
	if o.max <= 0 {
		o.max = DefaultMaxPending
	}
	if o.timeout <= 0 {
		o.timeout = DefaultWriteTimeout
	}
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
		// Only the kernel sockets of package net implement vectored writes;
		// net.Buffers.WriteTo falls back to one Write per buffer elsewhere.
		o.vectored = true
		if sc, ok := c.(syscall.Conn); ok && inlineSupported && o.release == nil && o.faults == nil {
			// Inline writes split buffers on a short write, which Release
			// could not be told of; the fault seam lives in the writer.
			if raw, err := sc.SyscallConn(); err == nil {
				o.raw = raw
			}
		}
	}
	return o
}

// Enqueue hands buf to the writer. It never blocks. On success the writer
// owns buf and nobody else may touch it again. On error nothing was queued
// and the caller keeps buf:
//   - ErrQueueFull: the byte bound would be passed; apply the caller's policy.
//   - a *CloseError (errors.Is ErrClosed): the Outbound is closed or flushing
//     before a close.
//
// A nil or empty buf is an impossible state: the Outbound fails closed with
// ReasonInvalidBuffer and Enqueue returns the recorded *CloseError.
func (o *Outbound) Enqueue(buf []byte) error {
	if len(buf) == 0 {
		return o.failInvalid()
	}
	return o.enqueue(int64(len(buf)), buf, nil)
}

// EnqueueBatch hands all of bufs to the writer atomically: either every
// buffer is queued, contiguously and in order, or none is. Errors and
// ownership are as for Enqueue; the bufs slice itself is not retained.
func (o *Outbound) EnqueueBatch(bufs ...[]byte) error {
	var n int64
	for _, b := range bufs {
		if len(b) == 0 {
			return o.failInvalid()
		}
		n += int64(len(b))
	}
	if len(bufs) == 0 {
		return nil
	}
	return o.enqueue(n, nil, bufs)
}

// enqueue accepts one buffer (bufs nil) or bufs (n bytes in all, none
// empty) and either writes them at once on the caller's goroutine (see
// writeInline) or queues them for the writer goroutine, starting or waking
// it. One buffer comes apart from the slice so that Enqueue allocates
// nothing.
func (o *Outbound) enqueue(n int64, one []byte, bufs [][]byte) error {
	o.mu.Lock()
	if o.state != stateOpen {
		o.mu.Unlock()
		return o.closedErr()
	}
	if !o.admit(n) {
		o.mu.Unlock()
		o.queueFull.Add(1)
		return ErrQueueFull
	}
	wasEmpty := len(o.queue) == 0
	if wasEmpty && o.raw != nil && len(bufs) <= maxIOV && !o.writing && !o.inline && o.sinceWrite() >= inlineGap {
		o.inline = true
		o.mu.Unlock()
		o.writeInline(one, bufs)
		return nil
	}
	if bufs == nil {
		o.queue = append(o.queue, one)
	} else {
		o.queue = append(o.queue, bufs...)
	}
	start := o.startLocked()
	o.mu.Unlock()
	if start {
		go o.run()
	} else if wasEmpty {
		o.signal()
	}
	return nil
}

// CloseAfter records reason and cause as the close reason now (unless one is
// already recorded), stops accepting buffers, queues final (for example a
// DISCONNECT or CONNACK), and has the writer flush everything queued before
// closing the connection. It never blocks; Done reports the end. final is not
// counted against MaxPending. Errors and ownership are as for EnqueueBatch.
// The flush is bounded by WriteTimeout like every batch.
func (o *Outbound) CloseAfter(reason CloseReason, cause error, final ...[]byte) error {
	var n int64
	for _, b := range final {
		if len(b) == 0 {
			return o.failInvalid()
		}
		n += int64(len(b))
	}
	o.mu.Lock()
	if o.state != stateOpen {
		o.mu.Unlock()
		return o.closedErr()
	}
	o.record(reason, cause)
	o.state = stateDraining
	if n > 0 {
		o.add(n)
		o.queue = append(o.queue, final...)
	}
	start := o.startLocked() // a writer must see the drain even with nothing queued
	o.mu.Unlock()
	if start {
		go o.run()
	} else {
		o.signal()
	}
	return nil
}

// Close closes the connection with ReasonClosed unless a reason is already
// recorded. It is idempotent, never blocks and always returns nil; queued
// buffers are discarded (and released) by the writer, which closes the
// net.Conn and then Done.
func (o *Outbound) Close() error {
	o.closeWith(ReasonClosed, nil)
	return nil
}

// CloseWith closes the connection, recording reason and cause unless a
// reason is already recorded. It is idempotent and never blocks.
func (o *Outbound) CloseWith(reason CloseReason, cause error) {
	o.closeWith(reason, cause)
}

// Done is closed when the last writer goroutine has exited after a close:
// the connection is closed and every accepted buffer was written or
// released.
func (o *Outbound) Done() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done == nil {
		if o.finished {
			return closedChan
		}
		o.done = make(chan struct{})
	}
	return o.done
}

// closedChan is Done's answer after the end, when nobody asked before.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// finish marks the end (the last writer's exit) and closes done.
func (o *Outbound) finish() {
	o.mu.Lock()
	o.finished = true
	d := o.done
	o.mu.Unlock()
	if d != nil {
		close(d)
	}
}

// Err returns the recorded close reason, or nil while the Outbound is open.
// It is set as soon as a close is decided (by CloseAfter too, before the
// flush completes).
func (o *Outbound) Err() *CloseError { return o.cerr.Load() }

// Reason returns the recorded close reason, ReasonNone while open.
func (o *Outbound) Reason() CloseReason {
	if e := o.cerr.Load(); e != nil {
		return e.Reason
	}
	return ReasonNone
}

// Pending returns the bytes accepted and not yet written.
func (o *Outbound) Pending() int64 { return o.pending.Load() }

// LastProgress returns the time of the last write progress, or of the moment
// pending bytes last went from zero to non-zero, whichever is later. The time
// carries a monotonic reading.
func (o *Outbound) LastProgress() time.Time {
	return parkEpoch.Add(time.Duration(o.progress.Load()))
}

// Stalled reports whether bytes are pending and no write progress was made
// in the limit before now. An owner's watchdog closes a stalled connection
// with ReasonStalled.
func (o *Outbound) Stalled(now time.Time, limit time.Duration) bool {
	return o.pending.Load() > 0 && now.Sub(o.LastProgress()) > limit
}

// OutboundStats is a snapshot of an Outbound's counters.
type OutboundStats struct {
	BytesQueued  int64 // accepted in total
	BytesWritten int64 // written in total
	Pending      int64 // accepted, not yet written or discarded
	Buffers      int64 // taken by the writer in total
	Batches      int64 // writer wake-ups that found data
	Writes       int64 // write calls; vectored ones carry up to 1024 buffers each
	MaxBatch     int64 // most buffers taken at one wake-up
	QueueFull    int64 // ErrQueueFull rejections
	Inline       int64 // writes made by Enqueue itself (writeInline), counted in Writes too
}

// Stats returns the counters. Each is read atomically; the set is not one
// consistent snapshot.
func (o *Outbound) Stats() OutboundStats {
	return OutboundStats{
		BytesQueued:  o.queued.Load(),
		BytesWritten: o.written.Load(),
		Pending:      o.pending.Load(),
		Buffers:      o.buffers.Load(),
		Batches:      o.batches.Load(),
		Writes:       o.writes.Load(),
		MaxBatch:     o.maxBatch.Load(),
		QueueFull:    o.queueFull.Load(),
		Inline:       o.inlines.Load(),
	}
}

// admit reports whether n more bytes fit and, if so, accounts for them.
// Called with mu held; only the writer decreases pending, so the check is
// conservative.
func (o *Outbound) admit(n int64) bool {
	if p := o.pending.Load(); p > 0 && p+n > o.max {
		return false
	}
	o.add(n)
	return true
}

// add accounts for n accepted bytes. Called with mu held.
func (o *Outbound) add(n int64) {
	o.queued.Add(n)
	if o.pending.Add(n) == n {
		// Pending went from zero: the stall clock starts now, not at the
		// last write, which may be long ago.
		o.progress.Store(monoNow())
	}
}

func (o *Outbound) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// startLocked reports whether the caller must start a writer goroutine
// (none runs) and marks one as running. Called with mu held.
func (o *Outbound) startLocked() bool {
	if o.running {
		return false
	}
	if o.wake == nil {
		o.wake = make(chan struct{}, 1)
	}
	o.running = true
	return true
}

// failInvalid fails closed on a nil or empty buffer.
func (o *Outbound) failInvalid() error {
	o.closeWith(ReasonInvalidBuffer, ErrInvalidBuffer)
	return o.closedErr()
}

func (o *Outbound) closedErr() error {
	if e := o.cerr.Load(); e != nil {
		return e
	}
	return ErrClosed // unreachable: the reason is recorded before the state leaves open
}

// record stores the first close reason. Called with mu held.
func (o *Outbound) record(reason CloseReason, cause error) {
	if o.cerr.Load() == nil {
		if reason == ReasonNone {
			reason = ReasonClosed
		}
		o.cerr.Store(&CloseError{Reason: reason, Err: cause})
	}
}

// aLongTimeAgo is a deadline that has always passed.
var aLongTimeAgo = time.Unix(1, 0)

// closeWith records the reason (first wins), makes the connection's pending
// and future reads and writes fail at once, and tells the writer to stop;
// the writer closes the connection on its way out. The caller's goroutine
// never calls conn.Close: a TLS Close writes a close_notify alert and may
// block for seconds on a peer that does not read.
func (o *Outbound) closeWith(reason CloseReason, cause error) {
	o.mu.Lock()
	if o.state == stateClosed {
		o.mu.Unlock()
		return
	}
	o.record(reason, cause)
	o.state = stateClosed
	start := o.startLocked() // the last writer closes the connection
	o.mu.Unlock()
	if err := o.conn.SetDeadline(aLongTimeAgo); err != nil && !errors.Is(err, net.ErrClosed) {
		// Deadlines unsupported: close to unblock the writer. Not when the
		// connection is closed already: a writer that ended a drain between
		// our unlock and here has closed it, and it is closed only once.
		_ = o.conn.Close()
	}
	o.quitting.Store(true)
	if start {
		go o.run()
	} else {
		o.signal()
	}
	if o.onClose != nil {
		o.onClose()
	}
}

// closeConn closes the connection from the last writer goroutine.
func (o *Outbound) closeConn() {
	defer func() { _ = recover() }() // a broken Close must not crash the process
	_ = o.conn.Close()
}

// run is a writer goroutine, started by startLocked's caller. Owner: the
// Outbound; one runs at a time. Exit: nothing to write for idleExit while
// open (an idle exit: the next Enqueue starts another), or the end of the
// connection (quitting set, a write failure, a completed drain, or a
// recovered panic). On the end the reason is recorded, the connection is
// closed, remaining buffers are released, and then done is closed; no
// writer starts after that one.
func (o *Outbound) run() {
	var w writerState
	var batch [][]byte // the buffers being written; released entries are nil
	// The idle check is a timer that sets idleCheck and wakes the writer,
	// once per idleExit while the writer runs. It is not reset per batch,
	// and the writer never blocks on a timer channel, which would put a
	// timer in the runtime's heap at every wait.
	tick := time.AfterFunc(idleExit, func() {
		o.idleCheck.Store(true)
		o.signal()
	})
	idle := false
	defer func() {
		tick.Stop()
		if idle {
			return
		}
		if r := recover(); r != nil {
			o.closeWith(ReasonPanic, &PanicError{Value: r, Stack: debug.Stack()})
		}
		o.closeConn()
		o.discard(batch)
		o.finish()
	}()
	for {
		if o.quitting.Load() {
			return
		}
		var draining, empty bool
		batch, draining, empty = o.take(&w, batch)
		if empty {
			// Nothing queued: exit if idle for idleExit, else wait.
			if o.idleCheck.Swap(false) {
				if left := idleExit - time.Since(o.LastProgress()); left > 0 {
					tick.Reset(left)
				} else if idle = o.exitIdle(); idle {
					return
				} else {
					tick.Reset(idleExit)
				}
			}
			<-o.wake // closeWith sets quitting, then wakes
			continue
		}
		if len(batch) == 0 {
			// Closed between the check of quitting and take, or draining with
			// nothing queued: the drain's reason is already recorded.
			o.closeWith(ReasonClosed, nil)
			return
		}
		if err := o.write(&w, batch); err != nil {
			o.closeWith(classify(err), err)
			return
		}
		o.releaseAll(batch)
		if draining {
			o.closeWith(ReasonClosed, nil)
			return
		}
	}
}

// exitIdle ends an idle writer: if still nothing is queued and the
// Outbound is open, it marks the writer stopped (under mu, so the next
// Enqueue starts a new one), drops the batch arrays and reports true.
func (o *Outbound) exitIdle() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.queue) > 0 || o.state != stateOpen {
		return false
	}
	o.queue = nil
	o.running = false
	return true
}

// take swaps the queue for the writer's previous (released, cleared but not
// resliced) batch array and returns everything queued; empty reports that
// nothing was queued while the Outbound is open.
func (o *Outbound) take(w *writerState, prev [][]byte) (batch [][]byte, draining, empty bool) {
	switch {
	case cap(prev) <= retainBatch || len(prev) >= cap(prev)/4:
		w.underused = 0
		prev = prev[:0]
	case w.underused < shrinkAfter:
		w.underused++
		prev = prev[:0]
	default:
		w.underused = 0
		prev = nil // the burst has passed: do not keep its array alive
	}
	o.mu.Lock()
	o.writing = false
	if o.inline && o.state != stateClosed || len(o.queue) == 0 && o.state == stateOpen {
		// Nothing queued, or an inline write is under way: wait. The
		// inline writer wakes this one when it leaves something queued.
		o.mu.Unlock()
		return prev, false, true
	}
	o.writing = true
	batch, o.queue = o.queue, prev
	draining = o.state == stateDraining
	o.mu.Unlock()
	return batch, draining, false
}

// write writes one batch under one write deadline.
func (o *Outbound) write(w *writerState, batch [][]byte) error {
	if p := o.faults; p != nil {
		if err := o.inject(p); err != nil {
			return err
		}
	}
	o.lastWrite.Store(monoNow())
	o.batches.Add(1)
	o.buffers.Add(int64(len(batch)))
	if n := int64(len(batch)); n > o.maxBatch.Load() {
		o.maxBatch.Store(n) // only the writer stores
	}
	if err := o.conn.SetWriteDeadline(time.Now().Add(o.timeout)); err != nil {
		return err
	}
	if o.vectored {
		return o.writeVectored(w, batch)
	}
	return o.writeCoalesced(batch)
}

// writeVectored writes batch with vectored writes of up to maxIOV buffers.
// net.Buffers.WriteTo consumes the slice it is given (and nils its entries),
// so it gets a copy of the headers in iovBack, never batch itself.
func (o *Outbound) writeVectored(w *writerState, batch [][]byte) error {
	for len(batch) > 0 {
		k := min(len(batch), maxIOV)
		w.iovBack = append(w.iovBack[:0], batch[:k]...)
		w.iov = w.iovBack
		n, err := w.iov.WriteTo(o.conn)
		clear(w.iovBack[:k])
		o.writes.Add(1)
		o.progressed(n)
		if err != nil {
			return err
		}
		batch = batch[k:]
	}
	return nil
}

var segmentPool = sync.Pool{New: func() any {
	b := make([]byte, 0, coalesceSize)
	return &b
}}

// writeCoalesced writes batch to a connection without vectored writes:
// small buffers are copied into segments of up to coalesceSize bytes, so a
// TLS connection seals one record per segment instead of one per message.
func (o *Outbound) writeCoalesced(batch [][]byte) error {
	if len(batch) == 1 {
		return o.writeOne(batch[0])
	}
	sp := segmentPool.Get().(*[]byte)
	seg := (*sp)[:0]
	defer func() {
		*sp = seg[:0]
		segmentPool.Put(sp)
	}()
	for _, b := range batch {
		if len(seg)+len(b) > coalesceSize && len(seg) > 0 {
			if err := o.writeOne(seg); err != nil {
				return err
			}
			seg = seg[:0]
		}
		if len(b) >= coalesceSize {
			if err := o.writeOne(b); err != nil {
				return err
			}
			continue
		}
		seg = append(seg, b...)
	}
	if len(seg) > 0 {
		return o.writeOne(seg)
	}
	return nil
}

func (o *Outbound) writeOne(b []byte) error {
	n, err := o.conn.Write(b)
	o.writes.Add(1)
	o.progressed(int64(n))
	return err
}

func (o *Outbound) progressed(n int64) {
	if n <= 0 {
		return
	}
	o.written.Add(n)
	o.pending.Add(-n)
	o.progress.Store(monoNow())
}

// releaseAll hands every buffer of a written batch to Release and clears
// the entries. An entry is cleared before its Release call, so a panicking
// Release is still called exactly once.
func (o *Outbound) releaseAll(batch [][]byte) {
	if o.release == nil {
		clear(batch)
		return
	}
	for i, b := range batch {
		batch[i] = nil
		o.release(b)
	}
}

// discard releases everything the writer and the queue still hold. It runs
// once, on the writer's exit, after the state is closed, so nothing can be
// queued afterwards.
func (o *Outbound) discard(batch [][]byte) {
	o.mu.Lock()
	q := o.queue
	o.queue = nil
	o.mu.Unlock()
	o.releaseSafe(batch)
	o.releaseSafe(q)
	o.pending.Store(0)
}

// releaseSafe is releaseAll for the exit path: a panicking Release must not
// take the process down from a deferred function.
func (o *Outbound) releaseSafe(bufs [][]byte) {
	if o.release == nil {
		clear(bufs)
		return
	}
	for i, b := range bufs {
		if b == nil {
			continue
		}
		bufs[i] = nil
		func() {
			defer func() { _ = recover() }()
			o.release(b)
		}()
	}
}

// classify maps a write error to its close reason.
func classify(err error) CloseReason {
	switch {
	case errors.Is(err, ErrInvalidBuffer):
		return ReasonInvalidBuffer
	case errors.Is(err, os.ErrDeadlineExceeded):
		return ReasonWriteTimeout
	default:
		return ReasonWriteError
	}
}

// sinceWrite is the time since the last write began.
func (o *Outbound) sinceWrite() time.Duration {
	return time.Duration(monoNow() - o.lastWrite.Load())
}

// writeInline writes bufs (accepted and counted, the queue empty, no
// writer busy: inline is set) on the caller's goroutine with one
// non-blocking vectored write, so a lightly loaded connection's message
// reaches the socket without waking the writer goroutine: one goroutine
// hand-off fewer on the way from publisher to subscriber. What the socket
// does not take at once (a full send buffer) goes to the front of the
// queue for the writer goroutine, which waits under the write deadline.
// The caller never blocks on the network.
func (o *Outbound) writeInline(one []byte, bufs [][]byte) {
	o.lastWrite.Store(monoNow())
	n, err, tried := o.tryWrite(one, bufs)
	if !tried && err != nil {
		// The poller refused before writing: a write deadline left by an
		// earlier batch has passed (the writer sets one per batch). While
		// open, clear it and try once more.
		o.mu.Lock()
		open := o.state == stateOpen
		if open {
			_ = o.conn.SetWriteDeadline(time.Time{})
		}
		o.mu.Unlock()
		if open {
			n, err, tried = o.tryWrite(one, bufs)
		}
	}
	if tried {
		o.inlines.Add(1)
		o.buffers.Add(int64(max(len(bufs), 1)))
		o.writes.Add(1)
		o.progressed(int64(n))
	}
	if tried && err != nil {
		o.mu.Lock()
		o.inline = false
		o.mu.Unlock()
		o.closeWith(classify(err), err)
		return
	}
	rest := unwritten(one, bufs, n)
	o.mu.Lock()
	o.inline = false
	if len(rest) > 0 {
		o.queue = append(rest, o.queue...)
	}
	kick := len(o.queue) > 0 || o.state != stateOpen
	start := kick && o.startLocked()
	o.mu.Unlock()
	if start {
		go o.run()
	} else if kick {
		o.signal()
	}
}

// tryWrite makes one non-blocking vectored write of bufs. tried reports
// whether the write was attempted; if not, err is the poller's refusal
// (closed, or a passed deadline). A full socket is n < total, err nil.
func (o *Outbound) tryWrite(one []byte, bufs [][]byte) (n int, err error, tried bool) {
	op := inlineOps.Get().(*inlineOp)
	op.one, op.bufs = one, bufs
	rerr := o.raw.Write(op.fn)
	n, err, tried = op.n, op.err, op.tried
	*op = inlineOp{fn: op.fn}
	inlineOps.Put(op)
	if !tried {
		return 0, rerr, false
	}
	if n < 0 {
		n = 0
	}
	if err == syscall.EAGAIN || err == syscall.EINTR {
		err = nil
	}
	return n, err, true
}

// inlineOp carries one inline write through syscall.RawConn.Write: its
// callback is made once per pooled op, so the write allocates nothing (a
// closure over the arguments and results would be four allocations per
// message).
type inlineOp struct {
	one   []byte
	bufs  [][]byte
	n     int
	err   error
	tried bool
	fn    func(fd uintptr) bool
}

var inlineOps = sync.Pool{New: func() any {
	op := new(inlineOp)
	op.fn = op.write
	return op
}}

// write is the RawConn callback: one attempt, never a wait for the socket.
func (op *inlineOp) write(fd uintptr) bool {
	op.tried = true
	if op.bufs == nil {
		op.n, op.err = write1(int(fd), op.one)
	} else {
		op.n, op.err = writev(int(fd), op.bufs)
	}
	return true
}

// unwritten returns what of one (bufs nil) or bufs is left after n bytes
// were written, as a new slice (bufs may be the caller's), or nil when all
// was written.
func unwritten(one []byte, bufs [][]byte, n int) [][]byte {
	if bufs == nil {
		if n < len(one) {
			return [][]byte{one[n:]}
		}
		return nil
	}
	for i, b := range bufs {
		if n < len(b) {
			rest := make([][]byte, 0, len(bufs)-i)
			rest = append(rest, b[n:])
			return append(rest, bufs[i+1:]...)
		}
		n -= len(b)
	}
	return nil
}
