package topic

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// benchOpts stands for the per-subscription data a broker keeps.
type benchOpts struct {
	qos     byte
	noLocal bool
	rap     bool
	id      uint32
}

const (
	benchSubs    = 1_000_000
	benchSites   = 1000
	benchDevices = 1000
	benchGroups  = 10
)

// benchFilter returns the i-th filter of the benchmark index. Of every 100:
// 60 exact "site/N/device/M/temp", 20 "site/N/+/M/temp", 1 "site/N/#",
// 9 "site/N/device/M/#" and 10 "$share/gG/site/N/device/+/temp", with N and M
// uniform. A typical topic "site/N/device/M/temp" then matches about 11
// subscriptions and 10 shared groups.
func benchFilter(rng *rand.Rand, i int) string {
	n := strconv.Itoa(rng.IntN(benchSites))
	m := strconv.Itoa(rng.IntN(benchDevices))
	switch r := i % 100; {
	case r < 60:
		return "site/" + n + "/device/" + m + "/temp"
	case r < 80:
		return "site/" + n + "/+/" + m + "/temp"
	case r < 81:
		return "site/" + n + "/#"
	case r < 90:
		return "site/" + n + "/device/" + m + "/#"
	default:
		return "$share/g" + strconv.Itoa(rng.IntN(benchGroups)) + "/site/" + n + "/device/+/temp"
	}
}

// measureCPU pins the benchmark goroutine to its thread and returns a func,
// to defer, that reports the thread's CPU time per iteration as cpu-ns/op.
func measureCPU(b *testing.B) func() {
	runtime.LockOSThread()
	start, ok := threadCPU()
	return func() {
		defer runtime.UnlockOSThread()
		if end, ok2 := threadCPU(); ok && ok2 && b.N > 0 {
			b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func benchTopics(rng *rand.Rand) [][]byte {
	topics := make([][]byte, 1024)
	for i := range topics {
		topics[i] = fmt.Appendf(nil, "site/%d/device/%d/temp", rng.IntN(benchSites), rng.IntN(benchDevices))
	}
	return topics
}

var big struct {
	once  sync.Once
	x     *Index[uint64, benchOpts]
	heap  uint64 // live heap held by the index, filter strings included
	build time.Duration
}

// bigIndex builds the 1M-subscription index once per test binary.
func bigIndex(b *testing.B) *Index[uint64, benchOpts] {
	big.once.Do(func() {
		rng := rand.New(rand.NewPCG(1, 2))
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		x := New[uint64, benchOpts]()
		x.Batch(func() {
			for i := range benchSubs {
				x.Subscribe(benchFilter(rng, i), uint64(i), benchOpts{qos: 1, id: uint32(i)})
			}
		})
		big.build = time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		big.x, big.heap = x, after.HeapAlloc-before.HeapAlloc
	})
	b.Logf("index: %d subscriptions, heap %.1f MiB (%d B/subscription), built in %v",
		big.x.Snapshot().Len(), float64(big.heap)/(1<<20), big.heap/benchSubs, big.build)
	return big.x
}

func BenchmarkMatch(b *testing.B) {
	x := bigIndex(b)
	s := x.Snapshot()
	topics := benchTopics(rand.New(rand.NewPCG(3, 4)))
	var subs, groups int
	sub := func(uint64, benchOpts) { subs++ }
	group := func(*Group[uint64, benchOpts]) { groups++ }

	b.Run("typical", func(b *testing.B) {
		subs, groups = 0, 0
		b.ReportAllocs()
		defer measureCPU(b)()
		for i := 0; b.Loop(); i++ {
			s.Match(topics[i&1023], sub, group)
		}
		b.ReportMetric(float64(subs)/float64(b.N), "subs/op")
		b.ReportMetric(float64(groups)/float64(b.N), "groups/op")
		b.ReportMetric(float64(big.heap)/(1<<20), "index-MiB")
	})
	b.Run("typical-hot", func(b *testing.B) { // one topic: the nodes stay in cache
		b.ReportAllocs()
		defer measureCPU(b)()
		for b.Loop() {
			s.Match(topics[0], sub, group)
		}
	})
	b.Run("no-match", func(b *testing.B) {
		topic := []byte("plant/7/line/3/pressure")
		b.ReportAllocs()
		defer measureCPU(b)()
		for b.Loop() {
			s.Match(topic, sub, group)
		}
	})
	b.Run("dollar", func(b *testing.B) {
		topic := []byte("$SYS/broker/clients/connected")
		b.ReportAllocs()
		defer measureCPU(b)()
		for b.Loop() {
			s.Match(topic, sub, group)
		}
	})
	b.Run("deep", func(b *testing.B) {
		topic := []byte("site/17/device/4711/temp/a/b/c/d/e/f/g")
		b.ReportAllocs()
		defer measureCPU(b)()
		for b.Loop() {
			s.Match(topic, sub, group)
		}
	})
}

// BenchmarkMatchParallel matches on all cores against one snapshot while no
// one writes: lock-free readers should scale with GOMAXPROCS.
func BenchmarkMatchParallel(b *testing.B) {
	s := bigIndex(b).Snapshot()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		topics := benchTopics(rand.New(rand.NewPCG(5, 6)))
		n := 0
		sub := func(uint64, benchOpts) { n++ }
		for i := 0; pb.Next(); i++ {
			s.Match(topics[i&1023], sub, nil)
		}
	})
}

// BenchmarkMatchWhileSubscribing matches while the owner keeps changing the
// index; readers take a fresh snapshot per match as a broker would.
func BenchmarkMatchWhileSubscribing(b *testing.B) {
	x := bigIndex(b)
	topics := benchTopics(rand.New(rand.NewPCG(7, 8)))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the owner; exits on stop
		defer wg.Done()
		rng := rand.New(rand.NewPCG(9, 10))
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			f := benchFilter(rng, int(i))
			x.Subscribe(f, benchSubs+i, benchOpts{})
			x.Unsubscribe(f, benchSubs+i)
		}
	}()
	n := 0
	sub := func(uint64, benchOpts) { n++ }
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		x.Snapshot().Match(topics[i&1023], sub, nil)
	}
	close(stop)
	wg.Wait()
}

// BenchmarkSubscribe measures one published change on the 1M index: the
// path copy plus the atomic publish. The pair form leaves the index as it
// was; the add form grows it by b.N.
func BenchmarkSubscribe(b *testing.B) {
	x := bigIndex(b)
	rng := rand.New(rand.NewPCG(11, 12))
	filters := make([]string, 4096)
	for i := range filters {
		filters[i] = benchFilter(rng, i)
	}
	b.Run("subscribe+unsubscribe", func(b *testing.B) {
		b.ReportAllocs()
		defer measureCPU(b)()
		for i := 0; b.Loop(); i++ {
			f := filters[i&4095]
			x.Subscribe(f, 1<<40+uint64(i), benchOpts{})
			x.Unsubscribe(f, 1<<40+uint64(i))
		}
	})
	b.Run("replace", func(b *testing.B) {
		b.ReportAllocs()
		defer measureCPU(b)()
		for i := 0; b.Loop(); i++ {
			x.Subscribe("site/1/device/1/temp", 1<<41, benchOpts{id: uint32(i)})
		}
	})
	b.Run("add", func(b *testing.B) {
		b.ReportAllocs()
		stop := measureCPU(b)
		for i := 0; b.Loop(); i++ {
			x.Subscribe(filters[i&4095], 1<<42+uint64(i), benchOpts{})
		}
		stop()
		x.Batch(func() {
			for i := range b.N {
				x.Unsubscribe(filters[i&4095], 1<<42+uint64(i))
			}
		})
	})
}

// BenchmarkSubscribeCrowdedFilter adds and removes one subscriber of a
// filter that already has 200k: the subscriber set is a hash trie, so this
// costs what it costs on an empty filter.
func BenchmarkSubscribeCrowdedFilter(b *testing.B) {
	x := New[uint64, benchOpts]()
	x.Batch(func() {
		for i := range 200_000 {
			x.Subscribe("broadcast/all", uint64(i), benchOpts{})
		}
	})
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		x.Subscribe("broadcast/all", 1<<40+uint64(i), benchOpts{})
		x.Unsubscribe("broadcast/all", 1<<40+uint64(i))
	}
}

// BenchmarkBuild builds the 1M index from scratch, in one Batch and with a
// publish after every Subscribe.
func BenchmarkBuild(b *testing.B) {
	for _, batch := range []bool{true, false} {
		b.Run(fmt.Sprintf("batch=%v", batch), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				rng := rand.New(rand.NewPCG(1, 2))
				x := New[uint64, benchOpts]()
				add := func() {
					for i := range benchSubs {
						x.Subscribe(benchFilter(rng, i), uint64(i), benchOpts{})
					}
				}
				if batch {
					x.Batch(add)
				} else {
					add()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*benchSubs), "ns/subscription")
		})
	}
}

func BenchmarkValidName(b *testing.B) {
	name := []byte("site/17/device/4711/temp")
	b.SetBytes(int64(len(name)))
	b.ReportAllocs()
	for b.Loop() {
		if ValidName(name) != nil {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkValidFilter(b *testing.B) {
	filter := []byte("$share/g1/site/17/device/+/temp")
	b.SetBytes(int64(len(filter)))
	b.ReportAllocs()
	for b.Loop() {
		if ValidFilter(filter) != nil {
			b.Fatal("invalid")
		}
	}
}
