package integration

// A bridge's remote is unreachable for longer than its outbox holds: the
// outbox stays within outbox_max_messages and outbox_max_bytes, drops by
// outbox_drop (oldest: the newest messages get through; newest: the first
// ones), counts every drop and logs them rate-limited, and delivers what
// it kept, in order, once the remote is back. Flooding a bridge whose
// remote is down leaves the broker's heap bounded.
//
// The remote is a nanoactor reached through a gate: a TCP forwarder on a
// fixed port. Closing the gate cuts the bridge's link and leaves the port
// with nobody listening; opening it again on the same port brings the
// remote back. The remote's subscriber stays connected all along, so
// nothing the bridge delivers is missed, and a probe sent before the
// outage proves the bridge's subscriptions are in place.

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/nanoactor/nanoactor/bridge"
)

type bridgeStatus = bridge.Status

// boGate forwards TCP connections from addr to target while open.
type boGate struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

// newBoGate reserves a free loopback port for a gate to target; the gate
// starts closed.
func newBoGate(t *testing.T, target string) *boGate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &boGate{t: t, addr: ln.Addr().String(), target: target, conns: map[net.Conn]bool{}}
	ln.Close()
	t.Cleanup(g.close)
	return g
}

// open listens on the gate's port and forwards what comes in.
func (g *boGate) open() {
	g.t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ln, err = net.Listen("tcp", g.addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		g.t.Fatalf("gate: listen on %s again: %v", g.addr, err)
	}
	g.mu.Lock()
	g.ln = ln
	g.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r, err := net.Dial("tcp", g.target)
			if err != nil {
				c.Close()
				continue
			}
			g.mu.Lock()
			if g.ln != ln { // closed meanwhile
				g.mu.Unlock()
				c.Close()
				r.Close()
				return
			}
			g.conns[c], g.conns[r] = true, true
			g.mu.Unlock()
			pipe := func(dst, src net.Conn) {
				io.Copy(dst, src)
				dst.Close()
				src.Close()
			}
			go pipe(r, c)
			go pipe(c, r)
		}
	}()
}

// close stops listening and cuts every forwarded connection.
func (g *boGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		g.ln.Close()
		g.ln = nil
	}
	for c := range g.conns {
		c.Close()
	}
	clear(g.conns)
}

// boBridgeTOML is bridgeTOML with some of its bridge keys set to other
// values (TOML values as written, e.g. `"64KiB"`).
func boBridgeTOML(t *testing.T, name, url string, protoVer int, set map[string]string, topics ...string) string {
	t.Helper()
	s := bridgeTOML(name, url, protoVer, "", topics...)
	for k, v := range set {
		line := k + " = " + v
		re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(k) + ` = .*$`)
		if re.MatchString(s) {
			s = re.ReplaceAllLiteralString(s, line)
		} else {
			i := strings.Index(s, "[[bridge.topic]]")
			s = s[:i] + line + "\n" + s[i:]
		}
	}
	return s
}

// boSetup is a local broker bridged to a remote through a gate, the remote
// subscribed to everything the bridge sends, and the gate closed after a
// probe went through: the outage has begun.
type boSetup struct {
	local, remote *broker
	gate          *boGate
	rsub          *v5Client
	base          bridgeStatus // the bridge's counters when the outage began
}

func boStart(t *testing.T, name string, ver int, set map[string]string) *boSetup {
	t.Helper()
	s := &boSetup{}
	s.remote = startBroker(t, "[node]\nname = \"remote\"\n")
	s.rsub = v5Simple(t, s.remote, "rsub")
	s.rsub.sub(paho.SubscribeOptions{Topic: "edge/#", QoS: 1})
	s.gate = newBoGate(t, s.remote.addr)
	s.gate.open()
	s.local = startBroker(t, boBridgeTOML(t, name, "mqtt-tcp://"+s.gate.addr, ver, set,
		"pattern = \"m/#\"\ndirection = \"out\"\nqos = 1\nlocal_prefix = \"site/\"\nremote_prefix = \"edge/\""))
	br := s.local.node.Bridges()[0]
	eventually(t, 10*time.Second, "bridge connected", func() bool { return br.Status().Connected })

	// A probe proves the bridge's local subscription; then the outbox is
	// empty and nothing is in flight.
	lp := v5Simple(t, s.local, "probe")
	deadline := time.Now().Add(10 * time.Second)
	for got := false; !got; {
		lp.pub(&paho.Publish{Topic: "site/m/probe", QoS: 0, Payload: []byte("probe")})
		select {
		case p := <-s.rsub.msgs:
			if p.Topic != "edge/m/probe" {
				t.Fatalf("remote got %s %q before the outage, want the probe", p.Topic, p.Payload)
			}
			got = true
		case <-time.After(50 * time.Millisecond):
		}
		if !got && time.Now().After(deadline) {
			t.Fatal("no probe reached the remote within 10s")
		}
	}
	eventually(t, 5*time.Second, "outbox empty after the probe", func() bool { return br.Status().Outbox == 0 })
	// Late probe copies (QoS 0, sent while waiting) are let through first.
	time.Sleep(100 * time.Millisecond)
	for len(s.rsub.msgs) > 0 {
		<-s.rsub.msgs
	}

	s.gate.close()
	eventually(t, 10*time.Second, "bridge disconnected", func() bool { return !br.Status().Connected })
	s.base = br.Status()
	return s
}

// boDropLine is a "bridge dropped messages" log line.
type boDropLine struct {
	Dropped      uint64 `json:"dropped"`
	DroppedTotal uint64 `json:"dropped_total"`
	Reason       string `json:"reason"`
	Bridge       string `json:"bridge"`
}

func boDropLines(t *testing.T, b *broker) []boDropLine {
	t.Helper()
	var out []boDropLine
	for _, l := range strings.Split(b.logs.String(), "\n") {
		if !strings.Contains(l, `"msg":"bridge dropped messages"`) {
			continue
		}
		var d boDropLine
		if err := json.Unmarshal([]byte(l), &d); err != nil {
			t.Fatalf("drop line %q: %v", l, err)
		}
		out = append(out, d)
	}
	return out
}

// boStats samples a bridge's outbox every millisecond until stop is
// called, which returns the largest counts seen.
func boStats(st func() (int, int64)) (stop func() (int, int64)) {
	var maxN atomic.Int64
	var maxB atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			n, b := st()
			if int64(n) > maxN.Load() {
				maxN.Store(int64(n))
			}
			if b > maxB.Load() {
				maxB.Store(b)
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return func() (int, int64) {
		close(done)
		<-finished
		return int(maxN.Load()), maxB.Load()
	}
}

// TestBridgeOutageOutboxBound: 2000 QoS 1 messages published during an
// outage into an outbox of 200 messages / 64 KiB.
func TestBridgeOutageOutboxBound(t *testing.T) {
	const (
		published = 2000
		maxMsgs   = 200
		maxBytes  = 64 << 10
	)
	cases := []struct {
		name    string
		ver     int
		drop    string
		payload int // bytes; 100: the message bound binds, 1000: the byte bound
	}{
		{"oldest/messages", 5, "oldest", 100},
		{"newest/messages", 5, "newest", 100},
		{"oldest/bytes", 4, "oldest", 1000},
		{"newest/bytes", 4, "newest", 1000},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			name := "o" + strings.ReplaceAll(c.name, "/", "-")
			s := boStart(t, name, c.ver, map[string]string{
				"outbox_max_messages": fmt.Sprint(maxMsgs),
				"outbox_max_bytes":    `"64KiB"`,
				"outbox_drop":         fmt.Sprintf("%q", c.drop),
			})
			br := s.local.node.Bridges()[0]
			stop := boStats(func() (int, int64) { st := br.Status(); return st.Outbox, st.OutboxBytes })

			payload := func(i int) string {
				p := fmt.Sprintf("%05d-", i)
				return p + strings.Repeat("x", c.payload-len(p))
			}
			lp := v5Simple(t, s.local, "flood")
			start := time.Now()
			for i := range published {
				lp.pub(&paho.Publish{Topic: "site/m/data", QoS: 1, Payload: []byte(payload(i))})
			}
			// Every message reached the bridge: kept or dropped.
			eventually(t, 20*time.Second, "the bridge took every message", func() bool {
				st := br.Status()
				return uint64(st.Outbox)+st.Dropped >= published
			})
			maxN, maxB := stop()
			st := br.Status()
			kept := st.Outbox
			t.Logf("after the flood: %+v (largest outbox seen %d messages, %d bytes)", st, maxN, maxB)
			if bs := s.local.node.Broker().Stats(); bs.Dropped != 0 {
				t.Fatalf("the local broker dropped %d messages before the bridge: the test's accounting is off", bs.Dropped)
			}
			if st.Connected || st.Sent != s.base.Sent || st.Acked != s.base.Acked {
				t.Fatalf("status %+v: want disconnected, nothing sent since the outage began (%+v)", st, s.base)
			}
			if uint64(kept)+st.Dropped != published {
				t.Fatalf("outbox %d + dropped %d != %d published", kept, st.Dropped, published)
			}
			if maxN > maxMsgs || maxB > maxBytes || kept > maxMsgs || st.OutboxBytes > maxBytes {
				t.Fatalf("outbox over its bound: largest seen %d messages / %d bytes, now %d / %d; bound %d / %d",
					maxN, maxB, kept, st.OutboxBytes, maxMsgs, maxBytes)
			}
			if c.payload == 100 {
				if kept != maxMsgs {
					t.Fatalf("kept %d messages of 100 bytes, want the message bound %d", kept, maxMsgs)
				}
			} else if kept >= maxMsgs || kept*c.payload > maxBytes || kept < maxBytes/(2*c.payload) {
				// The byte bound binds: between maxBytes/(2 × payload) (an
				// accounting overhead up to the payload's size) and
				// maxBytes/payload messages.
				t.Fatalf("kept %d messages of %d bytes under a %d-byte bound", kept, c.payload, maxBytes)
			}

			// One drop line so far: the rate limit allows one per 10 s.
			lines := boDropLines(t, s.local)
			elapsed := time.Since(start)
			if len(lines) < 1 || len(lines) > 1+int(elapsed/(10*time.Second)) {
				t.Fatalf("%d \"bridge dropped messages\" lines in %v, want 1 (rate-limited to one per 10 s): %+v",
					len(lines), elapsed.Round(time.Millisecond), lines)
			}
			if l := lines[0]; l.Dropped < 1 || l.DroppedTotal < l.Dropped || l.DroppedTotal > st.Dropped ||
				!strings.Contains(l.Reason, "outbox full") || l.Bridge != name {
				t.Fatalf("first drop line %+v (dropped in all %d)", l, st.Dropped)
			}

			// The remote comes back: what was kept arrives, once, in order.
			s.gate.open()
			first := 0 // newest: the first messages were kept
			if c.drop == "oldest" {
				first = published - kept // the last ones
			}
			for i := range kept {
				select {
				case p := <-s.rsub.msgs:
					if want := payload(first + i); p.Topic != "edge/m/data" || string(p.Payload) != want || p.QoS != 1 {
						t.Fatalf("message %d of %d at the remote: %s %.6q qos %d, want edge/m/data %.6q qos 1",
							i, kept, p.Topic, p.Payload, p.QoS, want)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("remote got %d of the %d messages kept; status %+v", i, kept, br.Status())
				}
			}
			s.rsub.none(300 * time.Millisecond)
			eventually(t, 5*time.Second, "outbox empty", func() bool { return br.Status().Outbox == 0 })
			st2 := br.Status()
			if st2.Dropped != st.Dropped || st2.Acked != s.base.Acked+uint64(kept) || st2.Reconnects != 1 {
				t.Fatalf("status after the outage %+v: want dropped %d, acked %d, 1 reconnect", st2, st.Dropped, s.base.Acked+uint64(kept))
			}

			// The drops not logged yet are logged once the rate limit
			// allows: in all, the lines account for every drop.
			eventually(t, 15*time.Second, "every drop logged", func() bool {
				var sum uint64
				for _, l := range boDropLines(t, s.local) {
					sum += l.Dropped
				}
				return sum == st.Dropped
			})
			lines = boDropLines(t, s.local)
			if n := len(lines); n < 1 || n > 1+int(time.Since(start)/(10*time.Second)) {
				t.Fatalf("%d drop lines in %v: %+v", n, time.Since(start).Round(time.Millisecond), lines)
			}
			if last := lines[len(lines)-1]; last.DroppedTotal != st.Dropped {
				t.Fatalf("last drop line %+v, want dropped_total %d", last, st.Dropped)
			}
		})
	}
}

// TestBridgeOutageHeapBounded floods 20,000 × 4 KiB (80 MiB) through a
// bridge whose remote is down and whose outbox holds 1 MiB: the heap grows
// by far less than what was published.
func TestBridgeOutageHeapBounded(t *testing.T) {
	const (
		n        = 20000
		size     = 4 << 10
		maxBytes = 1 << 20
		pubs     = 4
	)
	s := boStart(t, "heap", 5, map[string]string{"outbox_max_bytes": `"1MiB"`})
	br := s.local.node.Bridges()[0]
	var clients []*v5Client
	for i := range pubs {
		clients = append(clients, v5Simple(t, s.local, fmt.Sprintf("flood%d", i)))
	}
	stop := boStats(func() (int, int64) { st := br.Status(); return st.Outbox, st.OutboxBytes })
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	// What earlier tests left behind may still be winding down: take the
	// baseline once the heap has settled.
	before := heap()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		h := heap()
		settled := h+256<<10 > before && h < before+256<<10
		before = h
		if settled {
			break
		}
	}

	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := make([]byte, size)
			for j := i; j < n; j += pubs {
				copy(payload, fmt.Sprintf("%05d", j))
				ctx := t.Context()
				if _, err := c.cli.Publish(ctx, &paho.Publish{Topic: "site/m/bulk", QoS: 1, Payload: payload}); err != nil {
					t.Errorf("publish %d: %v", j, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	eventually(t, 30*time.Second, "the bridge took every message", func() bool {
		st := br.Status()
		return uint64(st.Outbox)+st.Dropped+s.local.node.Broker().Stats().Dropped >= n
	})
	maxN, maxB := stop()
	after := heap()
	st := br.Status()
	grew := int64(after) - int64(before)
	t.Logf("heap in use %d → %d MiB (%+d KiB) after %d MiB published; bridge %+v; broker dropped %d; largest outbox %d / %d bytes",
		before>>20, after>>20, grew>>10, n*size>>20, st, s.local.node.Broker().Stats().Dropped, maxN, maxB)
	if maxB > maxBytes || st.OutboxBytes > maxBytes {
		t.Fatalf("outbox bytes over the bound: largest seen %d, now %d, bound %d", maxB, st.OutboxBytes, maxBytes)
	}
	if grew > 16<<20 {
		t.Fatalf("heap in use grew by %d MiB flooding %d MiB through a bridge with a 1 MiB outbox", grew>>20, n*size>>20)
	}
}
