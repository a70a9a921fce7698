package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// A peer that never reads must trip the write deadline: the Outbound closes
// with ReasonWriteTimeout exactly WriteTimeout after the stuck batch started,
// and Enqueue then fails at once. Fake time (synctest) makes it exact.
func TestWriteTimeoutPeerNeverReads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const timeout = 5 * time.Second
		c, peer := net.Pipe() // peer never reads
		defer peer.Close()
		o := NewOutbound(c, Options{WriteTimeout: timeout})

		if err := o.Enqueue([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the writer is now blocked in Write

		time.Sleep(timeout / 2)
		if !o.Stalled(time.Now(), timeout/4) {
			t.Errorf("Stalled = false with %d bytes pending and no progress", o.Pending())
		}
		time.Sleep(timeout/2 - time.Nanosecond)
		synctest.Wait()
		if isDone(o) {
			t.Fatalf("closed before the write deadline: %v", o.Err())
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if !isDone(o) {
			t.Fatal("not closed at the write deadline")
		}
		if got := o.Reason(); got != ReasonWriteTimeout {
			t.Fatalf("reason = %v, want %v", got, ReasonWriteTimeout)
		}
		if err := o.Err(); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("cause = %v, want a deadline error", err)
		}
		err := o.Enqueue([]byte("x"))
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Enqueue after timeout = %v, want ErrClosed", err)
		}
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Reason != ReasonWriteTimeout {
			t.Errorf("Enqueue after timeout = %#v, want *CloseError{write timeout}", err)
		}
		if o.Stalled(time.Now(), 0) || o.Pending() != 0 {
			t.Errorf("closed outbound: Stalled true or Pending %d", o.Pending())
		}
	})
}

// The same over a real loopback TCP socket: the kernel buffers fill, the
// queue bound is hit, Enqueue keeps returning without blocking, and the
// write deadline closes the connection within a bounded time.
func TestWriteTimeoutTCP(t *testing.T) {
	srv, cli := tcpPair(t)
	defer cli.Close()                              // never read
	_ = cli.(*net.TCPConn).SetReadBuffer(4 << 10)  // small buffers so the
	_ = srv.(*net.TCPConn).SetWriteBuffer(4 << 10) // stall comes quickly
	o := NewOutbound(srv, Options{MaxPending: 256 << 10, WriteTimeout: 200 * time.Millisecond})

	result := make(chan error, 1)
	go func() {
		full := 0
		for {
			err := o.Enqueue(make([]byte, 16<<10))
			switch {
			case err == nil:
			case errors.Is(err, ErrQueueFull):
				full++
				time.Sleep(time.Millisecond)
			case errors.Is(err, ErrClosed):
				if full == 0 {
					err = fmt.Errorf("closed without ever hitting the queue bound: %w", err)
				} else {
					err = nil
				}
				result <- err
				return
			default:
				result <- err
				return
			}
			if p := o.Pending(); p > 256<<10+16<<10 {
				result <- fmt.Errorf("pending %d past the bound", p)
				return
			}
		}
	}()
	select {
	case err := <-result:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("enqueue loop did not end: Enqueue blocked or no write timeout")
	}
	waitDone(t, o, 5*time.Second)
	if got := o.Reason(); got != ReasonWriteTimeout {
		t.Fatalf("reason = %v (%v), want write timeout", got, o.Err())
	}
	if err := o.Enqueue([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Enqueue after close = %v", err)
	}
}

// The bound counts bytes queued plus in flight; a rejected Enqueue or batch
// queues nothing; one oversize buffer passes only when nothing is pending.
func TestQueueBoundBytes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, peer := net.Pipe() // never read: the first batch stays in flight
		defer peer.Close()
		tr := newReleaseTracker()
		o := NewOutbound(c, Options{MaxPending: 1000, Release: tr.Release})

		for i := range 10 {
			b := make([]byte, 100)
			if err := o.Enqueue(b); err != nil {
				t.Fatalf("enqueue %d: %v", i, err)
			}
			tr.Accepted(b)
			synctest.Wait()
		}
		if got := o.Pending(); got != 1000 {
			t.Fatalf("Pending = %d, want 1000", got)
		}
		if err := o.Enqueue(make([]byte, 1)); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("Enqueue past the bound = %v, want ErrQueueFull", err)
		}
		if err := o.EnqueueBatch(make([]byte, 1), make([]byte, 1)); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("EnqueueBatch past the bound = %v, want ErrQueueFull", err)
		}
		if got, st := o.Pending(), o.Stats(); got != 1000 || st.QueueFull != 2 || st.BytesQueued != 1000 {
			t.Fatalf("after rejections: Pending %d, stats %+v", got, st)
		}
		// A CloseAfter's final buffer is not counted against the bound.
		fin := []byte("bye")
		if err := o.CloseAfter(ReasonSlowConsumer, ErrQueueFull, fin); err != nil {
			t.Fatal(err)
		}
		tr.Accepted(fin)
		if err := o.Enqueue(make([]byte, 1)); !errors.Is(err, ErrClosed) {
			t.Fatalf("Enqueue while draining = %v, want ErrClosed", err)
		}
		o.Close() // the peer never reads: give up on the drain
		<-o.Done()
		if got := o.Reason(); got != ReasonSlowConsumer {
			t.Errorf("reason = %v, want the one CloseAfter recorded", got)
		}
		tr.Check(t)

		c2, peer2 := net.Pipe()
		defer peer2.Close()
		o2 := NewOutbound(c2, Options{MaxPending: 1000})
		if err := o2.Enqueue(make([]byte, 5000)); err != nil {
			t.Fatalf("oversize buffer on an idle outbound: %v", err)
		}
		if err := o2.Enqueue(make([]byte, 1)); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("Enqueue behind an oversize buffer = %v, want ErrQueueFull", err)
		}
		o2.Close()
		<-o2.Done()
	})
}

// record layout on the wire, for the ordering test:
//
//	0: length of the record (8..64)
//	1: producer
//	2..5: sequence number, little endian
//	6: position in its EnqueueBatch (0 for single Enqueue)
//	7: size of its EnqueueBatch (1 for single Enqueue)
//	8..: filler, the low byte of the sequence number
const recordHeader = 8

func makeRecord(producer, seq, pos, size int) []byte {
	n := recordHeader + (seq*7+producer)%57
	b := make([]byte, n)
	b[0] = byte(n)
	b[1] = byte(producer)
	binary.LittleEndian.PutUint32(b[2:], uint32(seq))
	b[6], b[7] = byte(pos), byte(size)
	for i := recordHeader; i < n; i++ {
		b[i] = byte(seq)
	}
	return b
}

// Order is kept across batches: 4 producers enqueue 100k buffers in total
// over loopback TCP (some as atomic batches of 3), with a small byte bound so
// ErrQueueFull and retries happen; the reader sees every record exactly once,
// in order per producer, and every batch contiguous.
func TestOrderAcrossBatchesTCP(t *testing.T) {
	const (
		producers = 4
		total     = 100_000
		perProd   = total / producers
	)
	srv, cli := tcpPair(t)
	defer cli.Close()
	tr := newReleaseTracker()
	o := NewOutbound(srv, Options{MaxPending: 16 << 10, Release: tr.Release, WriteTimeout: 10 * time.Second})

	got := readAllAsync(cli)
	produceRecords(t, o, producers, perProd, tr.Accepted, nil)
	drainAndCheckRecords(t, o, got, producers, perProd, 10*time.Second)
	st := o.Stats()
	if st.Buffers != total || st.BytesWritten != st.BytesQueued {
		t.Errorf("stats %+v: want %d buffers and all queued bytes written", st, total)
	}
	tr.Check(t)
	t.Logf("%d buffers in %d batches, %d write calls, max batch %d, %d queue-full retries",
		st.Buffers, st.Batches, st.Writes, st.MaxBatch, st.QueueFull)
}

// produceRecords has producers goroutines enqueue perProd makeRecord
// records each on o (every tenth as an atomic batch of 3), retrying on
// ErrQueueFull, and fails the test on any other error. accepted, when set,
// is told of every accepted buffer; pause, when set, runs before each
// enqueue with the producer's random source.
func produceRecords(t *testing.T, o *Outbound, producers, perProd int, accepted func([]byte), pause func(*rand.Rand)) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := range producers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 1))
			retry := func(f func() error) error {
				for {
					err := f()
					if !errors.Is(err, ErrQueueFull) {
						return err
					}
					time.Sleep(50 * time.Microsecond) // the caller's policy here: retry later
				}
			}
			for seq := 0; seq < perProd; {
				if pause != nil {
					pause(rng)
				}
				if seq%10 == 0 && seq+3 <= perProd {
					bufs := [][]byte{makeRecord(p, seq, 0, 3), makeRecord(p, seq+1, 1, 3), makeRecord(p, seq+2, 2, 3)}
					if err := retry(func() error { return o.EnqueueBatch(bufs...) }); err != nil {
						errs <- err
						return
					}
					for _, b := range bufs {
						if accepted != nil {
							accepted(b)
						}
					}
					seq += 3
					continue
				}
				b := makeRecord(p, seq, 0, 1)
				if err := retry(func() error { return o.Enqueue(b) }); err != nil {
					errs <- err
					return
				}
				if accepted != nil {
					accepted(b)
				}
				seq++
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// checkRecords parses a stream of makeRecord records from producers
// producers: every record intact, each producer's perProd records in
// order, and every batch contiguous.
// drainAndCheckRecords closes o after a flush of what produceRecords
// queued, waits up to d for the end (reason ReasonClosed) and for the
// reader's stream (got: the peer's bytes to EOF), and checks the records.
func drainAndCheckRecords(t *testing.T, o *Outbound, got <-chan []byte, producers, perProd int, d time.Duration) {
	t.Helper()
	if err := o.CloseAfter(ReasonClosed, nil); err != nil {
		t.Fatal(err)
	}
	waitDone(t, o, d)
	if r := o.Reason(); r != ReasonClosed {
		t.Fatalf("reason = %v (%v)", r, o.Err())
	}
	var stream []byte
	select {
	case stream = <-got:
	case <-time.After(d):
		t.Fatal("reader did not reach EOF")
	}
	checkRecords(t, stream, producers, perProd)
}

func checkRecords(t *testing.T, stream []byte, producers, perProd int) {
	t.Helper()
	next := make([]int, producers)
	var batchLeft, batchProd int
	records := 0
	for len(stream) > 0 {
		n := int(stream[0])
		if n < recordHeader || n > len(stream) {
			t.Fatalf("record %d: bad length %d (%d bytes left)", records, n, len(stream))
		}
		r := stream[:n]
		stream = stream[n:]
		p, seq, pos, size := int(r[1]), int(binary.LittleEndian.Uint32(r[2:])), int(r[6]), int(r[7])
		if want := makeRecord(p, seq, pos, size); !bytes.Equal(r, want) {
			t.Fatalf("record %d corrupted: %x, want %x", records, r, want)
		}
		if seq != next[p] {
			t.Fatalf("record %d: producer %d seq %d, want %d", records, p, seq, next[p])
		}
		next[p]++
		if batchLeft > 0 {
			if p != batchProd || pos != size-batchLeft {
				t.Fatalf("record %d: batch interleaved (producer %d pos %d)", records, p, pos)
			}
			batchLeft--
		} else if size > 1 {
			if pos != 0 {
				t.Fatalf("record %d: batch starts at pos %d", records, pos)
			}
			batchLeft, batchProd = size-1, p
		}
		records++
	}
	for p, n := range next {
		if n != perProd {
			t.Errorf("producer %d: %d records, want %d", p, n, perProd)
		}
	}
}

// A nil or empty buffer anywhere on the send path fails the Outbound closed
// with ReasonInvalidBuffer; buffers already accepted are released, the
// rejected ones are not.
func TestInvalidBufferFailsClosed(t *testing.T) {
	cases := []struct {
		name string
		send func(o *Outbound, ok []byte) error
	}{
		{"Enqueue nil", func(o *Outbound, _ []byte) error { return o.Enqueue(nil) }},
		{"Enqueue empty", func(o *Outbound, _ []byte) error { return o.Enqueue([]byte{}) }},
		{"EnqueueBatch nil inside", func(o *Outbound, ok []byte) error { return o.EnqueueBatch(ok, nil) }},
		{"CloseAfter empty final", func(o *Outbound, ok []byte) error { return o.CloseAfter(ReasonClosed, nil, ok, []byte{}) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, peer := net.Pipe()
				defer peer.Close()
				tr := newReleaseTracker()
				o := NewOutbound(c, Options{Release: tr.Release})
				first := []byte("accepted before")
				if err := o.Enqueue(first); err != nil {
					t.Fatal(err)
				}
				tr.Accepted(first)
				synctest.Wait() // the writer is blocked writing it: the peer does not read

				err := tc.send(o, []byte("rejected with the batch"))
				if !errors.Is(err, ErrClosed) || !errors.Is(err, ErrInvalidBuffer) {
					t.Fatalf("error = %v, want ErrClosed and ErrInvalidBuffer", err)
				}
				synctest.Wait()
				if !isDone(o) {
					t.Fatal("outbound still open")
				}
				if got := o.Reason(); got != ReasonInvalidBuffer {
					t.Fatalf("reason = %v, want invalid buffer", got)
				}
				if err := o.Enqueue([]byte("x")); !errors.Is(err, ErrInvalidBuffer) {
					t.Errorf("later Enqueue = %v, want the recorded invalid-buffer error", err)
				}
				tr.Check(t)
			})
		})
	}
}

// Each injected fault closes only its own connection, with its reason; a
// neighbour keeps writing.
func TestFaultsCloseOnlyThatConnection(t *testing.T) {
	cases := []struct {
		mode   FaultMode
		reason CloseReason
		cause  error
	}{
		{FaultError, ReasonWriteError, ErrInjected},
		{FaultPanic, ReasonPanic, injectedPanic{}},
		{FaultInvalid, ReasonInvalidBuffer, ErrInvalidBuffer},
	}
	for _, tc := range cases {
		t.Run(tc.mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, peer := net.Pipe()
				got := readAllAsync(peer)
				tr := newReleaseTracker()
				faults := new(FaultPlan)
				o := NewOutbound(c, Options{Faults: faults, Release: tr.Release})

				nc, npeer := net.Pipe()
				ngot := readAllAsync(npeer)
				neighbour := NewOutbound(nc, Options{})

				ok := []byte("before the fault;")
				if err := o.Enqueue(ok); err != nil {
					t.Fatal(err)
				}
				tr.Accepted(ok)
				synctest.Wait()
				faults.Set(tc.mode)
				bad := []byte("during the fault")
				if err := o.Enqueue(bad); err != nil {
					t.Fatal(err)
				}
				tr.Accepted(bad)
				synctest.Wait()
				if !isDone(o) {
					t.Fatal("faulty outbound still open")
				}
				if r := o.Reason(); r != tc.reason {
					t.Fatalf("reason = %v (%v), want %v", r, o.Err(), tc.reason)
				}
				if err := o.Err(); !errors.Is(err, tc.cause) {
					t.Errorf("cause = %v, want %v", err, tc.cause)
				}
				if tc.mode == FaultPanic {
					var pe *PanicError
					if !errors.As(o.Err(), &pe) || len(pe.Stack) == 0 {
						t.Errorf("cause = %#v, want *PanicError with a stack", o.Err())
					}
				}
				if b := <-got; string(b) != "before the fault;" {
					t.Errorf("peer got %q", b)
				}
				tr.Check(t)

				for range 3 {
					if err := neighbour.Enqueue([]byte("alive;")); err != nil {
						t.Fatalf("neighbour: %v", err)
					}
				}
				if err := neighbour.CloseAfter(ReasonClosed, nil); err != nil {
					t.Fatal(err)
				}
				<-neighbour.Done()
				if b := <-ngot; string(b) != "alive;alive;alive;" {
					t.Errorf("neighbour peer got %q", b)
				}
				if r := neighbour.Reason(); r != ReasonClosed {
					t.Errorf("neighbour reason = %v", r)
				}
			})
		})
	}
}

// A stalled writer (no progress, no deadline firing) is visible to the
// owner's watchdog through Stalled, which then closes with ReasonStalled.
func TestStalledWatchdog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, peer := net.Pipe()
		defer peer.Close()
		faults := new(FaultPlan)
		faults.Set(FaultStall)
		tr := newReleaseTracker()
		o := NewOutbound(c, Options{Faults: faults, Release: tr.Release})

		time.Sleep(time.Hour) // an idle connection is never stalled
		if o.Stalled(time.Now(), time.Second) {
			t.Fatal("idle outbound reported stalled")
		}
		b := []byte("ack")
		if err := o.Enqueue(b); err != nil {
			t.Fatal(err)
		}
		tr.Accepted(b)
		synctest.Wait()
		if o.Stalled(time.Now(), time.Second) {
			t.Fatal("stalled immediately: the stall clock must start when bytes became pending")
		}
		time.Sleep(2 * time.Second)
		if !o.Stalled(time.Now(), time.Second) {
			t.Fatalf("not stalled after 2s with %d bytes pending", o.Pending())
		}
		o.CloseWith(ReasonStalled, nil)
		<-o.Done()
		if r := o.Reason(); r != ReasonStalled {
			t.Fatalf("reason = %v", r)
		}
		tr.Check(t)
	})
}

// CloseAfter writes everything queued and its final buffers, then closes
// with the reason it recorded up front.
func TestCloseAfterFlushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, peer := net.Pipe()
		got := readAllAsync(peer)
		o := NewOutbound(c, Options{})
		cause := errors.New("malformed packet")
		for _, s := range []string{"a", "b", "c"} {
			if err := o.Enqueue([]byte(s)); err != nil {
				t.Fatal(err)
			}
		}
		if err := o.CloseAfter(ReasonProtocol, cause, []byte("DIS"), []byte("CONNECT")); err != nil {
			t.Fatal(err)
		}
		if r := o.Reason(); r != ReasonProtocol {
			t.Errorf("reason during the flush = %v", r)
		}
		if err := o.CloseAfter(ReasonShutdown, nil, []byte("again")); !errors.Is(err, ErrClosed) {
			t.Errorf("second CloseAfter = %v, want ErrClosed", err)
		}
		<-o.Done()
		if b := <-got; string(b) != "abcDISCONNECT" {
			t.Errorf("peer got %q", b)
		}
		if err := o.Err(); err.Reason != ReasonProtocol || !errors.Is(err, cause) {
			t.Errorf("recorded %v", err)
		}
	})
}

// Close is idempotent and safe to race with everything else: the connection
// is closed exactly once, one reason is recorded and stays, every accepted
// buffer is released once.
func TestCloseIdempotentConcurrent(t *testing.T) {
	for range 20 {
		c, peer := net.Pipe()
		drained := drain(peer)
		cc := &countingConn{Conn: c}
		tr := newReleaseTracker()
		o := NewOutbound(cc, Options{Release: tr.Release})
		reasons := []CloseReason{ReasonClosed, ReasonShutdown, ReasonReplaced, ReasonIdle}
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				for j := range 50 {
					b := []byte{byte(i), byte(j)}
					if o.Enqueue(b) == nil {
						tr.Accepted(b)
					}
				}
				switch i % 4 {
				case 0:
					o.Close()
				case 1:
					o.CloseWith(reasons[i%len(reasons)], nil)
				case 2:
					fin := []byte("fin")
					if o.CloseAfter(ReasonShutdown, nil, fin) == nil {
						tr.Accepted(fin)
					}
				case 3:
					o.CloseWith(ReasonIdle, nil)
					o.Close()
				}
			})
		}
		wg.Wait()
		o.Close()
		waitDone(t, o, 5*time.Second)
		first := o.Err()
		if first == nil || first.Reason == ReasonNone {
			t.Fatalf("no reason recorded: %v", first)
		}
		o.CloseWith(ReasonPanic, nil)
		if o.Close() != nil || o.Err() != first {
			t.Fatalf("reason changed after close: %v → %v", first, o.Err())
		}
		if n := cc.closes.Load(); n != 1 {
			t.Fatalf("conn closed %d times", n)
		}
		peer.Close()
		<-drained
		tr.Check(t)
	}
}

// Release is called exactly once per accepted buffer whichever way the
// buffer leaves: written, discarded by Close, dropped by a write error or a
// panic, or rejected (never released).
func TestReleaseExactlyOnce(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, o *Outbound, tr *releaseTracker, faults *FaultPlan, peer net.Conn)
	}{
		{"written", func(t *testing.T, o *Outbound, tr *releaseTracker, _ *FaultPlan, peer net.Conn) {
			got := readAllAsync(peer)
			enqueueN(t, o, tr, 100)
			if err := o.CloseAfter(ReasonClosed, nil); err != nil {
				t.Fatal(err)
			}
			<-o.Done()
			if b := <-got; len(b) != 100*4 {
				t.Errorf("peer got %d bytes", len(b))
			}
		}},
		{"discarded on close", func(t *testing.T, o *Outbound, tr *releaseTracker, _ *FaultPlan, _ net.Conn) {
			enqueueN(t, o, tr, 100) // the peer never reads
			synctest.Wait()
			o.Close()
			<-o.Done()
		}},
		{"write error", func(t *testing.T, o *Outbound, tr *releaseTracker, faults *FaultPlan, _ net.Conn) {
			faults.Set(FaultError)
			enqueueN(t, o, tr, 100)
			<-o.Done()
		}},
		{"panic", func(t *testing.T, o *Outbound, tr *releaseTracker, faults *FaultPlan, _ net.Conn) {
			faults.Set(FaultPanic)
			enqueueN(t, o, tr, 100)
			<-o.Done()
		}},
		{"rejected", func(t *testing.T, o *Outbound, tr *releaseTracker, _ *FaultPlan, _ net.Conn) {
			enqueueN(t, o, tr, 1)
			o.Close()
			if err := o.Enqueue([]byte("late")); !errors.Is(err, ErrClosed) {
				t.Fatalf("Enqueue after Close = %v", err)
			}
			<-o.Done()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				c, peer := net.Pipe()
				defer peer.Close()
				tr := newReleaseTracker()
				faults := new(FaultPlan)
				o := NewOutbound(c, Options{Release: tr.Release, Faults: faults})
				tc.run(t, o, tr, faults, peer)
				tr.Check(t)
			})
		})
	}
}

func enqueueN(t *testing.T, o *Outbound, tr *releaseTracker, n int) {
	t.Helper()
	for i := range n {
		b := []byte{'m', byte(i >> 8), byte(i), ';'}
		if err := o.Enqueue(b); err != nil {
			if errors.Is(err, ErrClosed) {
				return // a fault closed it; b stays ours
			}
			t.Fatal(err)
		}
		tr.Accepted(b)
	}
}

// A panicking Release is recovered like any writer panic.
func TestReleasePanicRecovered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, peer := net.Pipe()
		drained := drain(peer)
		calls := 0
		o := NewOutbound(c, Options{Release: func([]byte) {
			calls++ // only the writer goroutine calls Release
			panic("release exploded")
		}})
		_ = o.EnqueueBatch([]byte("a"), []byte("b"), []byte("c"))
		<-o.Done()
		<-drained
		if r := o.Reason(); r != ReasonPanic {
			t.Fatalf("reason = %v", r)
		}
		if calls != 3 {
			t.Errorf("Release called %d times, want 3", calls)
		}
	})
}

// A connection without vectored writes (TLS, WebSocket, net.Pipe) gets its
// small buffers coalesced: one Write per segment, not per buffer, and big
// buffers written as they are, all in order.
func TestCoalescedWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, peer := net.Pipe()
		o := NewOutbound(c, Options{MaxPending: 1 << 20})
		var want bytes.Buffer
		var batch [][]byte
		for i := range 2000 {
			b := bytes.Repeat([]byte{byte(i)}, 1+i%50)
			if i == 1000 {
				b = bytes.Repeat([]byte{'B'}, coalesceSize+1)
			}
			batch = append(batch, b)
		}
		if err := o.Enqueue([]byte("first")); err != nil {
			t.Fatal(err)
		}
		want.WriteString("first")
		synctest.Wait() // the writer is blocked on "first": nobody reads yet
		if err := o.EnqueueBatch(batch...); err != nil {
			t.Fatal(err)
		}
		for _, b := range batch {
			want.Write(b)
		}
		got := readAllAsync(peer)
		if err := o.CloseAfter(ReasonClosed, nil); err != nil {
			t.Fatal(err)
		}
		<-o.Done()
		if g := <-got; !bytes.Equal(g, want.Bytes()) {
			t.Fatalf("coalesced stream differs: %d bytes, want %d", len(g), want.Len())
		}
		// "first", then the batch: a segment, the big buffer, a segment.
		if st := o.Stats(); st.Batches != 2 || st.Writes != 4 || st.MaxBatch != 2000 {
			t.Errorf("stats %+v: want 2 batches, 4 writes, max batch 2000", st)
		}
	})
}

// Enqueue and the writer do not allocate in steady state.
func TestEnqueueNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	srv, cli := tcpPair(t)
	drained := drain(cli)
	free := make(chan []byte, 1024)
	for range cap(free) {
		free <- make([]byte, 64)
	}
	o := NewOutbound(srv, Options{Release: func(b []byte) { free <- b }})
	send := func() {
		b := <-free
		for {
			err := o.Enqueue(b)
			if err == nil {
				return
			}
			if !errors.Is(err, ErrQueueFull) {
				t.Fatal(err)
			}
			runtime.Gosched()
		}
	}
	for range 10_000 { // warm up: grow the queue arrays, fill the pools
		send()
	}
	// Count every malloc in the process (writer included) over many
	// messages: AllocsPerRun's integer average would hide rare array growth.
	const msgs = 100_000
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range msgs {
		send()
	}
	runtime.ReadMemStats(&after)
	if n := after.Mallocs - before.Mallocs; n > msgs/1000 {
		t.Errorf("%d mallocs (%d bytes) for %d messages", n, after.TotalAlloc-before.TotalAlloc, msgs)
	} else {
		t.Logf("%d mallocs (%d bytes) for %d messages", n, after.TotalAlloc-before.TotalAlloc, msgs)
	}
	if err := o.CloseAfter(ReasonClosed, nil); err != nil {
		t.Fatal(err)
	}
	waitDone(t, o, 5*time.Second)
	<-drained
	cli.Close()
}

func TestCloseReasonString(t *testing.T) {
	for r := ReasonNone; r < numReasons; r++ {
		if s := r.String(); s == "" || s[0] < 'a' || s[0] > 'z' {
			t.Errorf("reason %d: %q", r, s)
		}
	}
	if s := CloseReason(200).String(); s != "close reason 200" {
		t.Errorf("unknown reason: %q", s)
	}
	e := &CloseError{Reason: ReasonWriteTimeout, Err: io.ErrShortWrite}
	if s := e.Error(); s != "transport: write timeout: short write" {
		t.Errorf("Error() = %q", s)
	}
}

// Close, CloseWith and a failing Enqueue never wait for the net.Conn's Close
// (a TLS Close may block writing close_notify); the writer closes the conn
// and Done waits for it. A Read blocked on the conn returns at once.
func TestCloseDoesNotBlockOnConnClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, peer := net.Pipe() // the peer never reads
		defer peer.Close()
		sc := &slowCloseConn{Conn: c, unblock: make(chan struct{})}
		o := NewOutbound(sc, Options{})
		readErr := make(chan error, 1)
		go func() {
			_, err := c.Read(make([]byte, 1)) // the owner's reader
			readErr <- err
		}()
		if err := o.Enqueue([]byte("stuck in flight")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		o.CloseWith(ReasonShutdown, nil) // must return without waiting
		if err := <-readErr; !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("blocked Read returned %v, want a deadline error", err)
		}
		synctest.Wait()
		if isDone(o) {
			t.Fatal("Done before the conn was closed")
		}
		close(sc.unblock)
		<-o.Done()
		if r := o.Reason(); r != ReasonShutdown {
			t.Errorf("reason = %v", r)
		}
	})
}

// writerRunning reports whether o has a writer goroutine.
func writerRunning(o *Outbound) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.running
}

// An idle Outbound holds no writer goroutine: the writer starts with the
// first buffer, exits after idleExit without one, and the next Enqueue
// starts another; order and Close still work across the restarts.
func TestWriterIdleExit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, peer := net.Pipe()
		defer peer.Close()
		got := make(chan string, 16)
		go func() {
			buf := make([]byte, 64)
			for {
				n, err := peer.Read(buf)
				if err != nil {
					close(got)
					return
				}
				got <- string(buf[:n])
			}
		}()
		o := NewOutbound(c, Options{})
		if writerRunning(o) {
			t.Fatal("a writer runs before anything was queued")
		}
		for i, msg := range []string{"one", "two", "three"} {
			if err := o.Enqueue([]byte(msg)); err != nil {
				t.Fatal(err)
			}
			if s := <-got; s != msg {
				t.Fatalf("message %d: got %q, want %q", i, s, msg)
			}
			synctest.Wait()
			if !writerRunning(o) {
				t.Fatalf("message %d: writer gone right after a write", i)
			}
			time.Sleep(idleExit)
			synctest.Wait()
			if writerRunning(o) {
				t.Fatalf("message %d: writer still running after %v idle", i, idleExit)
			}
		}
		// Close with no writer running: a last writer closes the conn.
		if err := o.CloseAfter(ReasonClosed, nil, []byte("bye")); err != nil {
			t.Fatal(err)
		}
		if s := <-got; s != "bye" {
			t.Fatalf("final: got %q", s)
		}
		<-o.Done()
		if _, ok := <-got; ok {
			t.Fatal("peer still open after Done")
		}
		o2 := NewOutbound(peer, Options{})
		o2.Close()
		<-o2.Done()
	})
}

// No wake-up is lost across idle exits: whenever a buffer is queued, with
// the writer busy, waiting, on its idle timer or gone, it is written
// without any time passing (fake time: a lost wake-up would show as a
// write only when the idle timer fires).
func TestWriterNoLostWakeup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, peer := net.Pipe()
		defer peer.Close()
		var got atomic.Int64
		go func() {
			buf := make([]byte, 1024)
			for {
				n, err := peer.Read(buf)
				if err != nil {
					return
				}
				got.Add(int64(n))
			}
		}()
		o := NewOutbound(c, Options{})
		rng := rand.New(rand.NewPCG(1, 2))
		var sent int64
		for i := range 2000 {
			// Gaps around idleExit, so enqueues land on every writer state.
			time.Sleep(time.Duration(rng.Int64N(int64(2*idleExit/3))) * time.Duration(rng.IntN(3)))
			for range 1 + rng.IntN(3) {
				if err := o.Enqueue([]byte("0123456789")); err != nil {
					t.Fatal(err)
				}
				sent += 10
			}
			synctest.Wait()
			if got.Load() != sent {
				t.Fatalf("round %d: %d bytes written of %d queued, with no time passing", i, got.Load(), sent)
			}
		}
		o.Close()
		<-o.Done()
	})
}

// TestCloseOnceWhenConnAlreadyClosed: a close that finds the connection
// already closed by the writer (SetDeadline reports net.ErrClosed: a drain
// ended between the closer's unlock and its SetDeadline) does not close it
// again; the writer's close is the only one. TestCloseIdempotentConcurrent
// found this race under -race.
func TestCloseOnceWhenConnAlreadyClosed(t *testing.T) {
	c, peer := tcpPair(t)
	defer peer.Close()
	cc := &closedDeadlineConn{countingConn{Conn: c}}
	o := NewOutbound(cc, Options{})
	o.Close()
	waitDone(t, o, 5*time.Second)
	if n := cc.closes.Load(); n != 1 {
		t.Fatalf("conn closed %d times, want 1", n)
	}
}
