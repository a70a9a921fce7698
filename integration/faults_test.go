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
	faults := []struct {
		name string
		fn   func() bool
	}{
		{"write error", func() bool { return setFault(b, "f-sub", transport.FaultError) }},
		{"panic", func() bool { return setFault(b, "f-sub", transport.FaultPanic) }},
		{"invalid buffer", func() bool { return setFault(b, "f-sub", transport.FaultInvalid) }},
		{"write stalled", func() bool { return setFault(b, "f-sub", transport.FaultStall) }},
		{"connection actor panic", func() bool { return b.node.Broker().PanicPipe("f-sub") }},
	}
	stop := make(chan struct{})
	applied := make(chan []string, 1)
	go func() {
		var done []string
		defer func() { applied <- done }()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(700 * time.Millisecond):
			}
			f := faults[i%len(faults)]
			if f.fn() {
				done = append(done, f.name)
			}
		}
	}()
	pub := runStreamPub(t, dial, "f-pub", "f/t", n, rate)
	close(stop)
	got := <-applied
	eventually(t, 20*time.Second, "every message at the subscriber", func() bool { return sub.count() >= n })
	time.Sleep(200 * time.Millisecond)
	sub.close()
	pp.finish(t)
	sub.check(t, n)
	t.Logf("faults applied: %v; subscriber reconnects %d; publisher longest pause %v; unrelated client %d round trips, longest gap %v",
		got, sub.reconns.Load(), pub.maxPause, pp.n, pp.maxGap)
	if len(got) < len(faults) {
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

// setFault sets a fault on the client's current pipe.
func setFault(b *broker, client string, m transport.FaultMode) bool {
	p := b.node.Broker().Fault(client)
	if p == nil {
		return false
	}
	p.Set(m)
	return true
}
