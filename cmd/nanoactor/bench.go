package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nanoactor/nanoactor/client"
	"github.com/nanoactor/nanoactor/protocol"
)

// Bench payload layout: every bench message starts with this header, padded
// with zeros to -s bytes. Fields are big-endian.
const (
	offTime   = 0  // int64: send time, UnixNano
	offSeq    = 8  // uint64: per-publisher sequence number, from 1
	offPub    = 16 // uint32: publisher index
	offRun    = 20 // uint32: run nonce, so two runs' publishers differ
	benchHead = 24 // minimum payload size
)

// Bench defaults.
const (
	benchDefaultClients  = 10
	benchDefaultSize     = 256
	benchDefaultInterval = 100 * time.Millisecond // per publisher
	benchDefaultConnGap  = 10 * time.Millisecond
	benchDefaultDuration = 10 * time.Second
	benchDrainTimeout    = 3 * time.Second // waiting for acks and deliveries at the end
	benchMaxMissing      = 1 << 20         // gap entries tracked per publisher and subscriber
)

const benchUsage = `usage: nanoactor bench pub|sub|conn|pubsub [flags]

  pub     -c publishers send -s byte messages on -t (%i: client index)
  sub     -c subscribers on -t; latency, lost, duplicated, out of order
  conn    -c connections at -i intervals; connections/s, connect latency
  pubsub  both in one process: -c publishers and --subs subscribers on
          --filter, for an end-to-end measurement

Messages carry a send timestamp and a per-publisher sequence number, so a
"bench sub" in another process measures the latency of a "bench pub" too
(clocks must agree). A progress line is printed every second.

`

// benchConfig is the parsed command line of bench.
type benchConfig struct {
	mode     string
	conn     connFlags
	opts     client.Options
	clients  int
	subs     int
	connGap  time.Duration
	interval time.Duration
	rate     float64
	size     int
	topic    string
	filter   string
	duration time.Duration
	count    int
	inflight int
	prefix   string
	run      uint32
}

// cmdBench implements "nanoactor bench".
func cmdBench(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "--help" || args[0] == "-help") {
			fmt.Fprint(stdout, benchUsage)
			return exitOK
		}
		fmt.Fprint(stderr, benchUsage)
		return exitUsage
	}
	cfg := benchConfig{mode: args[0], run: rand.Uint32()}
	switch cfg.mode {
	case "pub", "sub", "conn", "pubsub":
	default:
		fmt.Fprintf(stderr, "nanoactor bench: unknown mode %q\n\n%s", cfg.mode, benchUsage)
		return exitUsage
	}
	fs, help := newFlagSet("bench "+cfg.mode, benchUsage, stderr)
	cfg.conn.registerTransport(fs)
	fs.IntVar(&cfg.clients, "c", benchDefaultClients, "clients: publishers (pub, pubsub), subscribers (sub) or connections (conn)")
	fs.IntVar(&cfg.subs, "subs", 1, "subscribers of pubsub")
	fs.DurationVar(&cfg.connGap, "i", benchDefaultConnGap, "interval between connects (a number is milliseconds)")
	fs.DurationVar(&cfg.interval, "I", benchDefaultInterval, "interval between messages of one publisher (a number is milliseconds; 0: as fast as the window allows)")
	fs.Float64Var(&cfg.rate, "R", 0, "total publish rate in msg/s over all publishers (overrides -I)")
	fs.IntVar(&cfg.size, "s", benchDefaultSize, "payload size in bytes (at least 24)")
	fs.StringVar(&cfg.topic, "t", "bench/%i", "topic (pub, pubsub) or filter (sub); %i is the client index")
	fs.StringVar(&cfg.filter, "filter", "bench/#", "filter of the pubsub subscribers")
	fs.DurationVar(&cfg.duration, "d", 0, "run time (a number is seconds; default 10s for pub and pubsub, until interrupted for sub, 0 for conn)")
	fs.IntVar(&cfg.count, "n", 0, "messages per publisher (0: until -d)")
	fs.IntVar(&cfg.inflight, "inflight", client.DefaultInflight, "QoS 1/2 inflight window per publisher")
	fs.StringVar(&cfg.prefix, "prefix", "bench", "client id prefix")
	if code, done := parseFlags(fs, numberUnits(args[1:]), help, "bench", false, stdout, stderr); done {
		return code
	}
	durationSet := false
	fs.Visit(func(f *flag.Flag) { durationSet = durationSet || f.Name == "d" })
	if !durationSet && cfg.count == 0 && (cfg.mode == "pub" || cfg.mode == "pubsub") {
		cfg.duration = benchDefaultDuration
	}
	if err := cfg.check(stderr); err != nil {
		fmt.Fprintf(stderr, "nanoactor bench: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := newBench(cfg, stdout)
	if err := b.run(ctx); err != nil {
		fmt.Fprintf(stderr, "nanoactor bench: %v\n", err)
		return exitFail
	}
	return exitOK
}

// numberUnits turns a bare number after -i, -I (milliseconds) and -d
// (seconds) into a duration, as emqtt-bench takes them.
func numberUnits(args []string) []string {
	out := append([]string(nil), args...)
	unit := map[string]string{"-i": "ms", "-I": "ms", "-d": "s", "--i": "ms", "--I": "ms", "--d": "s"}
	for i := 0; i < len(out); i++ {
		name, val, eq := strings.Cut(out[i], "=")
		u, ok := unit[name]
		if !ok {
			continue
		}
		if !eq {
			if i+1 == len(out) {
				break
			}
			i++
			val = out[i]
		}
		if _, err := strconv.ParseFloat(val, 64); err == nil {
			val += u
		}
		if eq {
			out[i] = name + "=" + val
		} else {
			out[i] = val
		}
	}
	return out
}

func (c *benchConfig) check(stderr io.Writer) error {
	opts, _, err := c.conn.options(stderr)
	if err != nil {
		return err
	}
	opts.Debug = nil
	opts.Inflight = c.inflight
	c.opts = opts
	switch {
	case c.clients < 1:
		return errors.New("-c must be at least 1")
	case c.subs < 0:
		return errors.New("--subs must not be negative")
	case c.size < benchHead:
		return fmt.Errorf("-s %d: payload must be at least %d bytes (timestamp, sequence, publisher)", c.size, benchHead)
	case c.size > protocol.DefaultMaxPacketSize-1024:
		return fmt.Errorf("-s %d: payload too large", c.size)
	case c.rate < 0 || c.interval < 0 || c.connGap < 0 || c.duration < 0 || c.count < 0:
		return errors.New("-R, -I, -i, -d and -n must not be negative")
	}
	if c.rate > 0 {
		c.interval = time.Duration(float64(c.clients) / c.rate * float64(time.Second))
	}
	return nil
}

// bench is one run. Counters are updated by the clients' goroutines and
// read by the progress printer.
type bench struct {
	cfg    benchConfig
	out    io.Writer
	tty    bool
	start  time.Time
	sent   atomic.Int64 // publishes written
	acked  atomic.Int64 // QoS 1/2 publishes acknowledged
	failed atomic.Int64 // QoS 1/2 publishes that failed
	recv   atomic.Int64 // messages received by subscribers
	conns  atomic.Int64 // connections open

	stopProgress chan struct{} // closed by endProgress
	progressDone chan struct{} // closed when the progress goroutine exits
	endOnce      sync.Once

	pubLast []atomic.Uint64 // last sequence number sent, per publisher
	subs    []*benchSub
}

func newBench(cfg benchConfig, out io.Writer) *bench {
	b := &bench{cfg: cfg, out: out}
	if f, ok := out.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			b.tty = true
		}
	}
	return b
}

// benchSub is the state of one subscriber; its reader goroutine is the
// only writer, and the summary reads it after the client has closed.
type benchSub struct {
	mu     sync.Mutex
	strict bool // pubsub: publishers start after the subscriber, sequence 1 is expected first
	lat    histogram
	pubs   map[uint64]*seqTrack // key: run<<32 | publisher
}

// seqTrack follows the sequence numbers of one publisher at one subscriber.
type seqTrack struct {
	last     uint64              // highest sequence number seen
	missing  map[uint64]struct{} // gaps below last, not yet filled
	overflow int64               // gaps not tracked (beyond benchMaxMissing)
	dup, ooo int64
}

func (t *seqTrack) see(seq uint64) {
	switch {
	case seq == t.last+1:
		t.last = seq
	case seq > t.last:
		for s := t.last + 1; s < seq; s++ {
			if len(t.missing) >= benchMaxMissing {
				t.overflow += int64(seq - s)
				break
			}
			t.missing[s] = struct{}{}
		}
		t.last = seq
	default:
		if _, ok := t.missing[seq]; ok {
			delete(t.missing, seq)
			t.ooo++
		} else {
			t.dup++
		}
	}
}

func (s *benchSub) onMessage(b *bench) func(client.Message) {
	return func(m client.Message) {
		now := time.Now().UnixNano()
		b.recv.Add(1)
		if len(m.Payload) < benchHead {
			return
		}
		sent := int64(binary.BigEndian.Uint64(m.Payload[offTime:]))
		seq := binary.BigEndian.Uint64(m.Payload[offSeq:])
		key := uint64(binary.BigEndian.Uint32(m.Payload[offRun:]))<<32 | uint64(binary.BigEndian.Uint32(m.Payload[offPub:]))
		s.mu.Lock()
		defer s.mu.Unlock()
		s.lat.record(now - sent)
		t := s.pubs[key]
		if t == nil {
			t = &seqTrack{missing: map[uint64]struct{}{}}
			if !s.strict {
				t.last = seq - 1 // joined a running publisher: start where it is
			}
			s.pubs[key] = t
		}
		t.see(seq)
	}
}

// run connects the clients, runs the mode until the duration, the count or
// ctx ends it, and prints the summary.
func (b *bench) run(ctx context.Context) error {
	cfg := b.cfg
	b.start = time.Now()
	b.stopProgress = make(chan struct{})
	b.progressDone = make(chan struct{})
	go func() { defer close(b.progressDone); b.progress(b.stopProgress) }()
	defer b.endProgress()

	runCtx := ctx
	if cfg.duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	switch cfg.mode {
	case "conn":
		return b.runConn(ctx, runCtx)
	case "sub":
		subs, err := b.startSubs(ctx, cfg.clients, cfg.topic, false)
		defer closeAll(subs)
		if err != nil {
			return err
		}
		<-runCtx.Done()
		b.endProgress()
		b.summary(time.Since(b.start), nil)
		return nil
	}
	var subs []*client.Client
	if cfg.mode == "pubsub" {
		var err error
		subs, err = b.startSubs(ctx, cfg.subs, cfg.filter, true)
		defer closeAll(subs)
		if err != nil {
			return err
		}
	}
	b.pubLast = make([]atomic.Uint64, cfg.clients)
	pubs, err := b.connect(ctx, cfg.clients, "pub")
	defer closeAll(pubs)
	if err != nil {
		return err
	}
	b.start = time.Now()
	if cfg.duration > 0 { // the run time counts from the first publish
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, cfg.duration)
		defer cancel()
	}
	var wg sync.WaitGroup
	for i, c := range pubs {
		wg.Go(func() { b.publish(runCtx, c, i) })
	}
	wg.Wait()
	elapsed := time.Since(b.start)
	// Let acknowledgements and deliveries arrive, within a bound.
	expect := b.sent.Load() * int64(len(subs))
	deadline := time.Now().Add(benchDrainTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		acksDone := cfg.conn.qos == 0 || b.acked.Load()+b.failed.Load() >= b.sent.Load()
		if acksDone && b.recv.Load() >= expect {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	closeAll(pubs)
	closeAll(subs)
	b.endProgress()
	b.summary(elapsed, subs)
	return nil
}

// connect opens n clients named prefix-role-i, one every cfg.connGap.
func (b *bench) connect(ctx context.Context, n int, role string) ([]*client.Client, error) {
	return b.connectWith(ctx, n, role, nil)
}

func (b *bench) connectWith(ctx context.Context, n int, role string, onMsg func(i int) func(client.Message)) ([]*client.Client, error) {
	cs := make([]*client.Client, 0, n)
	for i := range n {
		o := b.cfg.opts
		o.ClientID = fmt.Sprintf("%s-%s-%d-%08x", b.cfg.prefix, role, i, b.cfg.run)
		if onMsg != nil {
			o.OnMessage = onMsg(i)
		}
		c, err := client.Dial(ctx, o)
		if err != nil {
			return cs, fmt.Errorf("%s %d: %w", role, i, err)
		}
		b.conns.Add(1)
		cs = append(cs, c)
		if b.cfg.connGap > 0 && i+1 < n {
			select {
			case <-time.After(b.cfg.connGap):
			case <-ctx.Done():
				return cs, ctx.Err()
			}
		}
	}
	return cs, nil
}

func (b *bench) startSubs(ctx context.Context, n int, filter string, strict bool) ([]*client.Client, error) {
	for range n {
		b.subs = append(b.subs, &benchSub{strict: strict, pubs: map[uint64]*seqTrack{}})
	}
	cs, err := b.connectWith(ctx, n, "sub", func(i int) func(client.Message) { return b.subs[i].onMessage(b) })
	if err != nil {
		return cs, err
	}
	for i, c := range cs {
		f := strings.ReplaceAll(filter, "%i", strconv.Itoa(i))
		rc, err := c.Subscribe(ctx, protocol.Subscription{Filter: []byte(f), QoS: byte(b.cfg.conn.qos)})
		if err != nil {
			return cs, fmt.Errorf("sub %d: %w", i, err)
		}
		if len(rc) != 1 || rc[0].IsError() {
			return cs, fmt.Errorf("sub %d: subscription to %q refused: %v", i, f, rc)
		}
	}
	return cs, nil
}

// publish is the loop of publisher i: one message per interval until ctx
// ends or the count is reached.
func (b *bench) publish(ctx context.Context, c *client.Client, i int) {
	cfg := b.cfg
	payload := make([]byte, cfg.size)
	binary.BigEndian.PutUint32(payload[offPub:], uint32(i))
	binary.BigEndian.PutUint32(payload[offRun:], cfg.run)
	pub := &protocol.Publish{Topic: []byte(strings.ReplaceAll(cfg.topic, "%i", strconv.Itoa(i))), Payload: payload, QoS: byte(cfg.conn.qos)}
	var tick <-chan time.Time
	if cfg.interval > 0 {
		t := time.NewTicker(cfg.interval)
		defer t.Stop()
		tick = t.C
	}
	done := func(err error) {
		if err != nil {
			b.failed.Add(1)
		} else {
			b.acked.Add(1)
		}
	}
	for seq := uint64(1); cfg.count == 0 || seq <= uint64(cfg.count); seq++ {
		if tick != nil && seq > 1 {
			select {
			case <-tick:
			case <-ctx.Done():
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		binary.BigEndian.PutUint64(payload[offTime:], uint64(time.Now().UnixNano()))
		binary.BigEndian.PutUint64(payload[offSeq:], seq)
		if err := c.PublishAsync(ctx, pub, done); err != nil {
			return // ctx ended while waiting for the window, or the connection failed
		}
		b.pubLast[i].Store(seq)
		b.sent.Add(1)
	}
}

// runConn opens the connections, reports their rate and connect latency,
// holds them for the duration and closes them.
func (b *bench) runConn(ctx, runCtx context.Context) error {
	var lat histogram
	cs := make([]*client.Client, 0, b.cfg.clients)
	defer closeAll(cs)
	start := time.Now()
	for i := range b.cfg.clients {
		o := b.cfg.opts
		o.ClientID = fmt.Sprintf("%s-conn-%d-%08x", b.cfg.prefix, i, b.cfg.run)
		t0 := time.Now()
		c, err := client.Dial(ctx, o)
		if err != nil {
			b.endProgress()
			return fmt.Errorf("conn %d: %w", i, err)
		}
		lat.record(int64(time.Since(t0)))
		b.conns.Add(1)
		cs = append(cs, c)
		if b.cfg.connGap > 0 && i+1 < b.cfg.clients {
			select {
			case <-time.After(b.cfg.connGap):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	elapsed := time.Since(start)
	if b.cfg.duration > 0 {
		<-runCtx.Done() // hold the connections
	}
	b.endProgress()
	fmt.Fprintf(b.out, "bench conn: %d connections in %s: %.1f conn/s\n", len(cs), elapsed.Round(time.Millisecond), float64(len(cs))/elapsed.Seconds())
	fmt.Fprintf(b.out, "connect latency: %s\n", lat.summary())
	return nil
}

func closeAll(cs []*client.Client) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { c.Disconnect() })
	}
	wg.Wait()
}

// progress prints one line per second until stop is closed.
func (b *bench) progress(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var lastSent, lastRecv int64
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		sent, recv := b.sent.Load(), b.recv.Load()
		line := fmt.Sprintf("%4ds conns=%d sent=%d (%d/s) recv=%d (%d/s)", int(time.Since(b.start).Round(time.Second).Seconds()),
			b.conns.Load(), sent, sent-lastSent, recv, recv-lastRecv)
		if f := b.failed.Load(); f > 0 {
			line += fmt.Sprintf(" failed=%d", f)
		}
		lastSent, lastRecv = sent, recv
		if b.tty {
			fmt.Fprintf(b.out, "\r\x1b[K%s", line)
		} else {
			fmt.Fprintln(b.out, line)
		}
	}
}

// endProgress stops the progress goroutine and waits for it, then clears
// the progress line on a terminal. It is idempotent; the summary is printed
// after it, so the two never interleave.
func (b *bench) endProgress() {
	b.endOnce.Do(func() {
		close(b.stopProgress)
		<-b.progressDone
		if b.tty {
			fmt.Fprint(b.out, "\r\x1b[K")
		}
	})
}

// summary prints the final report. In pubsub mode (subs not nil) the
// messages a subscriber never received after the last one it saw count as
// lost too.
func (b *bench) summary(elapsed time.Duration, subs []*client.Client) {
	secs := max(elapsed.Seconds(), 1e-9)
	cfg := b.cfg
	fmt.Fprintf(b.out, "bench %s: %d clients, %d subscribers, qos %d, %d bytes, version %s, %s\n",
		cfg.mode, cfg.clients, len(b.subs), cfg.conn.qos, cfg.size, cfg.opts.Version, elapsed.Round(time.Millisecond))
	if cfg.mode != "sub" {
		fmt.Fprintf(b.out, "sent: %d msgs, %.1f msg/s", b.sent.Load(), float64(b.sent.Load())/secs)
		if cfg.conn.qos > 0 {
			fmt.Fprintf(b.out, ", acked %d, failed %d", b.acked.Load(), b.failed.Load())
		}
		fmt.Fprintln(b.out)
	}
	if len(b.subs) == 0 {
		return
	}
	fmt.Fprintf(b.out, "received: %d msgs, %.1f msg/s\n", b.recv.Load(), float64(b.recv.Load())/secs)
	var lat histogram
	var lost, dup, ooo int64
	// With a per-subscriber filter ("bench/%i", pairs), subscriber i
	// expects only publisher i; otherwise every subscriber expects all.
	pairs := strings.Contains(cfg.filter, "%i")
	for si, s := range b.subs {
		s.mu.Lock()
		lat.merge(&s.lat)
		for key, t := range s.pubs {
			lost += int64(len(t.missing)) + t.overflow
			dup += t.dup
			ooo += t.ooo
			if subs != nil && key>>32 == uint64(cfg.run) && int(uint32(key)) < len(b.pubLast) {
				if sent := b.pubLast[uint32(key)].Load(); sent > t.last {
					lost += int64(sent - t.last)
				}
			}
		}
		if subs != nil {
			for i := range b.pubLast {
				if pairs && i != si {
					continue
				}
				if _, ok := s.pubs[uint64(cfg.run)<<32|uint64(i)]; !ok {
					lost += int64(b.pubLast[i].Load())
				}
			}
		}
		s.mu.Unlock()
	}
	fmt.Fprintf(b.out, "latency: %s\n", lat.summary())
	fmt.Fprintf(b.out, "lost=%d duplicated=%d out_of_order=%d\n", lost, dup, ooo)
}

// histogram records durations in nanoseconds in log-linear buckets: exact
// below 64 ns, then 32 buckets per power of two (about 3% resolution).
// The zero value is empty.
type histogram struct {
	counts [2048]uint64
	n      uint64
	max    int64
}

func bucket(v int64) int {
	if v < 64 {
		return int(max(v, 0))
	}
	e := bits.Len64(uint64(v)) - 6
	return e*32 + int(uint64(v)>>e)
}

// lower is the smallest value of bucket i.
func lower(i int) int64 {
	if i < 64 {
		return int64(i)
	}
	e := i/32 - 1
	return int64(i%32+32) << e
}

func (h *histogram) record(v int64) {
	h.counts[bucket(v)]++
	h.n++
	h.max = max(h.max, v)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the lower bound of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n-1)) + 1
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(lower(i))
		}
	}
	return time.Duration(h.max)
}

func (h *histogram) summary() string {
	if h.n == 0 {
		return "no samples"
	}
	r := func(d time.Duration) time.Duration { return d.Round(time.Microsecond) }
	return fmt.Sprintf("p50=%s p90=%s p99=%s max=%s (%d samples)",
		r(h.quantile(0.50)), r(h.quantile(0.90)), r(h.quantile(0.99)), r(time.Duration(h.max)), h.n)
}
