package transport

import (
	"encoding/binary"
	"errors"
	"net"
	"runtime"
	"testing"
	"time"
)

const benchMsg = 64 // bytes per message: a typical small PUBLISH

// benchPool is a fixed set of message buffers recycled through
// Options.Release, so the benchmark measures the transport, not the GC.
type benchPool chan []byte

func newBenchPool(n, size int) benchPool {
	p := make(benchPool, n)
	for range n {
		p <- make([]byte, size)
	}
	return p
}

func (p benchPool) release(b []byte) { p <- b }

// reportWrites reports the coalescing figures: write calls per message
// (syscalls on TCP: one writev per up to 1024 buffers) and messages/s.
func reportWrites(b *testing.B, st OutboundStats) {
	b.ReportMetric(float64(st.Writes)/float64(b.N), "writes/op")
	if st.Batches > 0 {
		b.ReportMetric(float64(st.Buffers)/float64(st.Batches), "msgs/batch")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// flushAndCheck drains o, waits for the reader and checks every byte arrived.
func flushAndCheck(b *testing.B, o *Outbound, cli net.Conn, read <-chan int64) {
	if err := o.CloseAfter(ReasonClosed, nil); err != nil {
		b.Fatal(err)
	}
	n := <-read // EOF: the writer flushed everything and closed
	b.StopTimer()
	cli.Close()
	if n != int64(b.N)*benchMsg {
		b.Fatalf("reader got %d bytes, want %d (%v)", n, int64(b.N)*benchMsg, o.Err())
	}
}

// One producer enqueues 64-byte messages to a loopback TCP connection whose
// peer drains as fast as it can. writes/op well below 1 is the coalescing.
func BenchmarkOutboundTCP(b *testing.B) {
	srv, cli := tcpPair(b)
	read := drain(cli)
	pool := newBenchPool(16<<10, benchMsg)
	o := NewOutbound(srv, Options{Release: pool.release, WriteTimeout: time.Minute})
	b.ReportAllocs()
	b.SetBytes(benchMsg)
	b.ResetTimer()
	for i := range b.N {
		m := <-pool
		binary.LittleEndian.PutUint64(m, uint64(i))
		for {
			err := o.Enqueue(m)
			if err == nil {
				break
			}
			if !errors.Is(err, ErrQueueFull) {
				b.Fatal(err)
			}
			runtime.Gosched()
		}
	}
	flushAndCheck(b, o, cli, read)
	reportWrites(b, o.Stats())
}

// Fan-in: several goroutines (actors, in the broker) enqueue to one
// connection at once.
func BenchmarkOutboundTCPParallel(b *testing.B) {
	srv, cli := tcpPair(b)
	read := drain(cli)
	pool := newBenchPool(16<<10, benchMsg)
	o := NewOutbound(srv, Options{Release: pool.release, WriteTimeout: time.Minute})
	b.ReportAllocs()
	b.SetBytes(benchMsg)
	b.SetParallelism(2) // 2×GOMAXPROCS producers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m := <-pool
			for {
				err := o.Enqueue(m)
				if err == nil {
					break
				}
				if !errors.Is(err, ErrQueueFull) {
					b.Error(err)
					return
				}
				runtime.Gosched()
			}
		}
	})
	flushAndCheck(b, o, cli, read)
	reportWrites(b, o.Stats())
}

// The peer to compare with: one Write (one syscall) per message, as a
// broker without an outbound queue pays. Same socket setup, same reader.
func BenchmarkDirectWriteTCP(b *testing.B) {
	srv, cli := tcpPair(b)
	read := drain(cli)
	m := make([]byte, benchMsg)
	b.ReportAllocs()
	b.SetBytes(benchMsg)
	b.ResetTimer()
	for range b.N {
		if _, err := srv.Write(m); err != nil {
			b.Fatal(err)
		}
	}
	srv.Close()
	b.StopTimer()
	if n := <-read; n != int64(b.N)*benchMsg {
		b.Fatalf("reader got %d bytes", n)
	}
	cli.Close()
	b.ReportMetric(1, "writes/op")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
