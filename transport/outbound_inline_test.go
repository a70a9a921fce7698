package transport

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// A buffer queued on an idle TCP connection is written by Enqueue itself:
// no writer goroutine starts, and the peer has the bytes.
func TestInlineWriteNoWriter(t *testing.T) {
	srv, cli := tcpPair(t)
	defer cli.Close()
	o := NewOutbound(srv, Options{})
	if o.raw == nil {
		t.Fatal("a TCP connection without Release or Faults has no raw socket for inline writes")
	}
	for i := range 3 {
		time.Sleep(2 * inlineGap)
		msg := []byte{'m', byte('0' + i)}
		if err := o.Enqueue(msg); err != nil {
			t.Fatal(err)
		}
		if writerRunning(o) {
			t.Fatalf("message %d: a writer goroutine started for an inline write", i)
		}
		got := make([]byte, 2)
		_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(cli, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("message %d: read %q, %v", i, got, err)
		}
	}
	if st := o.Stats(); st.Writes != 3 || st.Inline != 3 || st.Batches != 0 || st.BytesWritten != 6 || o.Pending() != 0 {
		t.Errorf("stats %+v, pending %d: want 3 inline writes of 6 bytes in all, no batch, nothing pending", st, o.Pending())
	}
	o.Close()
	waitDone(t, o, 5*time.Second)
}

// An inline write the socket takes only in part (a full send buffer) leaves
// the rest at the head of the queue for the writer goroutine, ahead of
// what was queued meanwhile: the peer reads everything in order.
func TestInlineShortWrite(t *testing.T) {
	srv, cli := tcpPair(t)
	defer cli.Close()
	_ = srv.(*net.TCPConn).SetWriteBuffer(4 << 10) // the peer reads nothing yet: a short write
	o := NewOutbound(srv, Options{MaxPending: 8 << 20})
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	time.Sleep(2 * inlineGap)
	if err := o.Enqueue(big); err != nil {
		t.Fatal(err)
	}
	if w := o.Stats().BytesWritten; w == 0 || w >= int64(len(big)) || !writerRunning(o) {
		t.Fatalf("inline write of %d bytes wrote %d and left the writer running %v; want a short write and a writer",
			len(big), w, writerRunning(o))
	}
	tail := [][]byte{[]byte("head-"), []byte("payload")}
	if err := o.EnqueueBatch(tail...); err != nil {
		t.Fatal(err)
	}
	if err := o.Enqueue([]byte("-end")); err != nil {
		t.Fatal(err)
	}
	got := readAllAsync(cli)
	if err := o.CloseAfter(ReasonClosed, nil); err != nil {
		t.Fatal(err)
	}
	waitDone(t, o, 10*time.Second)
	want := append(append([]byte{}, big...), "head-payload-end"...)
	select {
	case b := <-got:
		if !bytes.Equal(b, want) {
			t.Fatalf("read %d bytes, want %d; equal prefix %d", len(b), len(want), commonPrefix(b, want))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reader did not reach EOF")
	}
	if o.Reason() != ReasonClosed {
		t.Errorf("reason %v (%v)", o.Reason(), o.Err())
	}
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// A write deadline left behind by an earlier batch that has since passed
// does not fail an inline write on an open connection.
func TestInlineStaleDeadline(t *testing.T) {
	srv, cli := tcpPair(t)
	defer cli.Close()
	o := NewOutbound(srv, Options{})
	_ = srv.SetWriteDeadline(time.Now().Add(-time.Second))
	time.Sleep(2 * inlineGap)
	if err := o.Enqueue([]byte("late")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(cli, got); err != nil || string(got) != "late" {
		t.Fatalf("read %q, %v (outbound err %v)", got, err, o.Err())
	}
	if o.Err() != nil {
		t.Fatalf("closed: %v", o.Err())
	}
	o.Close()
	waitDone(t, o, 5*time.Second)
}

// Inline writes and the writer goroutine take turns without reordering:
// producers enqueue records and batches with pauses (inline writes) and in
// bursts (the writer), into small socket buffers and a slow reader (short
// inline writes), and the reader sees every record once, in order per
// producer, every batch contiguous.
func TestInlineOrderMixed(t *testing.T) {
	const (
		producers = 4
		perProd   = 5000
	)
	srv, cli := tcpPair(t)
	defer cli.Close()
	_ = srv.(*net.TCPConn).SetWriteBuffer(8 << 10)
	o := NewOutbound(srv, Options{MaxPending: 64 << 10})

	// A reader that stops now and then, so the socket fills.
	got := make(chan []byte, 1)
	go func() {
		var all []byte
		buf := make([]byte, 4<<10)
		for i := 0; ; i++ {
			n, err := cli.Read(buf)
			all = append(all, buf[:n]...)
			if err != nil {
				got <- all
				return
			}
			if i%50 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	produceRecords(t, o, producers, perProd, nil, func(rng *rand.Rand) {
		if rng.IntN(20) == 0 {
			time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond) // a pause: the next write may go inline
		}
	})
	drainAndCheckRecords(t, o, got, producers, perProd, 20*time.Second)
	st := o.Stats()
	if st.BytesWritten != st.BytesQueued {
		t.Errorf("stats %+v: not every queued byte written", st)
	}
	if st.Inline == 0 || st.Batches == 0 {
		t.Errorf("stats %+v: want both inline writes and writer batches", st)
	}
	t.Logf("%d buffers: %d inline writes, %d batches, %d write calls, max batch %d", st.Buffers, st.Inline, st.Batches, st.Writes, st.MaxBatch)
}

// An inline write allocates nothing: Enqueue on a quiet TCP connection
// costs no heap beyond the caller's buffer.
func TestInlineWriteNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops sync.Pool entries at random: allocations are not the program's")
	}
	srv, cli := tcpPair(t)
	defer cli.Close()
	drained := drain(cli)
	o := NewOutbound(srv, Options{})
	msg := []byte("ping")
	pair := [][]byte{[]byte("head"), []byte("payload")}
	send := func() {
		time.Sleep(2 * inlineGap) // quiet: the write goes inline
		if err := o.Enqueue(msg); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * inlineGap)
		if err := o.EnqueueBatch(pair...); err != nil {
			t.Fatal(err)
		}
	}
	send() // warm the pool
	if n := testing.AllocsPerRun(200, send); n != 0 {
		t.Errorf("%v allocations per inline Enqueue", n)
	}
	if st := o.Stats(); st.Inline != st.Writes || st.Batches != 0 {
		t.Fatalf("stats %+v: want every write inline", st)
	}
	o.Close()
	waitDone(t, o, 5*time.Second)
	<-drained
}
