package integration

import (
	"testing"
	"time"

	"github.com/nanoactor/nanoactor/transport"
)

// TestPipeFaultsKeepSessionsAndOthers breaks the subscriber's pipe over and
// over — its send path returns an error, panics, is handed an invalid
// buffer, stalls, and its connection actor panics — while a publisher sends
// QoS 2. The subscriber reconnects with its persistent session and gets
// every message exactly once and in order; an unrelated client never
// pauses over a second; each break is one supervision log line with its
// reason. (DESIGN: "The failure it must make impossible".)
func TestPipeFaultsKeepSessionsAndOthers(t *testing.T) {
	b := startBroker(t, "[mqtt]\nprogress_timeout = \"400ms\"\nwrite_timeout = \"2s\"\n")
	b.node.Broker().EnableFaults()
	dial := tcpDial(b.addr)
	sub := startStreamSub(t, dial, "f-sub", "f/t")
	pp := startPingPong(t, dial, "f-other")

	const n, rate = 1500, 300
	stop := breakPipes(b, "f-sub", 700*time.Millisecond, 700*time.Millisecond)
	pub := runStreamPub(t, dial, "f-pub", "f/t", n, rate)
	got := stop()
	eventually(t, 20*time.Second, "every message at the subscriber", func() bool { return sub.count() >= n })
	time.Sleep(200 * time.Millisecond)
	sub.close()
	pp.finish(t)
	sub.check(t, n)
	t.Logf("faults applied: %v; subscriber reconnects %d; publisher longest pause %v; unrelated client %d round trips, longest gap %v",
		got, sub.reconns.Load(), pub.maxPause, pp.n, pp.maxGap)
	if len(got) < len(faultKinds) {
		t.Errorf("only %d faults applied (%v), want every kind", len(got), got)
	}
	if pp.maxGap > time.Second {
		t.Errorf("unrelated client paused %v, want under 1s", pp.maxGap)
	}
	for _, reason := range []string{"write error", "panic", "invalid buffer", "write stalled", "injected fault"} {
		if b.logs.Count(`"msg":"supervision"`, reason) == 0 {
			t.Errorf("no supervision log line with reason %q", reason)
		}
	}
}

// faultKinds are the ways a test breaks a pipe: its send path fails
// (error, writer panic, invalid buffer, stall) or its actor panics.
var faultKinds = []struct {
	name string
	set  func(b *broker, client string) bool
}{
	{"write error", func(b *broker, c string) bool { return setFault(b, c, transport.FaultError) }},
	{"panic", func(b *broker, c string) bool { return setFault(b, c, transport.FaultPanic) }},
	{"invalid buffer", func(b *broker, c string) bool { return setFault(b, c, transport.FaultInvalid) }},
	{"write stalled", func(b *broker, c string) bool { return setFault(b, c, transport.FaultStall) }},
	{"actor panic", func(b *broker, c string) bool { return b.node.Broker().PanicPipe(c) }},
}

// breakPipes breaks client's pipe first after first, then every every,
// cycling through faultKinds, until the returned stop is called; stop
// returns the kinds applied, in order.
func breakPipes(b *broker, client string, first, every time.Duration) (stop func() []string) {
	quit := make(chan struct{})
	applied := make(chan []string, 1)
	go func() {
		var done []string
		defer func() { applied <- done }()
		for i := 0; ; i++ {
			wait := every
			if i == 0 {
				wait = first
			}
			select {
			case <-quit:
				return
			case <-time.After(wait):
			}
			// Apply the fault and see it take: the pipe it found may have
			// been closing already; then try the new one.
			k := faultKinds[i%len(faultKinds)]
			for try := 0; try < 3; try++ {
				before := b.logs.Count(`"msg":"supervision"`, `"client":"`+client+`"`)
				if !k.set(b, client) {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				took := false
				for end := time.Now().Add(1500 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
					if b.logs.Count(`"msg":"supervision"`, `"client":"`+client+`"`) > before {
						took = true
						break
					}
				}
				if took {
					done = append(done, k.name)
					break
				}
			}
		}
	}()
	return func() []string { close(quit); return <-applied }
}

// setFault sets a fault on the client's current pipe.
func setFault(b *broker, client string, m transport.FaultMode) bool {
	p := b.node.Broker().Fault(client)
	if p == nil {
		return false
	}
	p.Set(m)
	return true
}
