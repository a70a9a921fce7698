package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
)

// gcHeapFloor is the smallest heap goal the broker runs with. With the
// runtime's default (GOGC=100 over a live heap of a few MiB) a broker
// moving 5,000 QoS 1 msg/s collects three times a second, and each cycle
// takes one of two cores for milliseconds: that was the p99 latency. A
// floor of 32 MiB makes it one cycle every few seconds at that load, while
// a large heap (many connections) keeps GOGC=100, so idle memory per
// connection is not traded away.
const gcHeapFloor = 32 << 20

// gcPercentFor is the GOGC giving a heap goal of at least floor over live
// bytes, and never less than 100.
func gcPercentFor(live, floor uint64) int {
	if live == 0 || floor <= 2*live {
		return 100
	}
	return int(floor*100/live) - 100
}

// startGCFloor keeps the heap goal at or above floor: after every
// collection it sets GOGC from the live heap (gcPercentFor). It does
// nothing when GOGC is set in the environment (the operator decides). The
// returned stop ends the tuning after the next collection.
func startGCFloor(floor uint64) (stop func()) {
	if _, set := os.LookupEnv("GOGC"); set {
		return func() {}
	}
	t := &gcFloor{floor: floor, pct: 100}
	t.sample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t.set(gcPercentFor(0, floor))
	t.arm()
	return func() { t.stopped.Store(true) }
}

type gcFloor struct {
	floor   uint64
	pct     int
	sample  []metrics.Sample
	stopped atomic.Bool
}

// gcSentinel is garbage made on purpose: its finalizer runs once per
// collection. It holds a pointer so that it is never a tiny allocation
// (whose finalizer may not run).
type gcSentinel struct{ _ *int }

func (t *gcFloor) arm() {
	runtime.SetFinalizer(&gcSentinel{}, func(*gcSentinel) { t.collected() })
}

// collected runs on the finalizer goroutine after a collection.
func (t *gcFloor) collected() {
	if t.stopped.Load() {
		debug.SetGCPercent(100)
		return
	}
	metrics.Read(t.sample)
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		t.set(gcPercentFor(t.sample[0].Value.Uint64(), t.floor))
	}
	t.arm()
}

// set changes GOGC when it moved by more than a tenth (SetGCPercent stops
// the world briefly).
func (t *gcFloor) set(pct int) {
	if d := pct - t.pct; d*10 > t.pct || -d*10 > t.pct {
		t.pct = pct
		debug.SetGCPercent(pct)
	}
}
