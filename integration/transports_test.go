package integration

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/transport"
)

// allTransports starts a node with one listener per transport on
// 127.0.0.1:0 and returns it with a dial function per listener name.
func allTransports(t *testing.T, pki *testPKI, extra string) (*broker, map[string]dialFunc) {
	t.Helper()
	doc := fmt.Sprintf(`
[[listener]]
name = "tcp"
protocol = "tcp"
bind = "127.0.0.1:0"

[[listener]]
name = "tls"
protocol = "tls"
bind = "127.0.0.1:0"
cert_file = %q
key_file = %q

[[listener]]
name = "ws"
protocol = "ws"
bind = "127.0.0.1:0"

[[listener]]
name = "wss"
protocol = "wss"
bind = "127.0.0.1:0"
cert_file = %q
key_file = %q

[[listener]]
name = "quic"
protocol = "quic"
bind = "127.0.0.1:0"
cert_file = %q
key_file = %q
`, pki.certFile, pki.keyFile, pki.certFile, pki.keyFile, pki.certFile, pki.keyFile) + extra
	b := startBroker(t, doc)
	addr := func(name string) string { return b.node.Addr(name).String() }
	dials := map[string]dialFunc{
		"tcp": tcpDial(addr("tcp")),
		"tls": func() (net.Conn, error) {
			d := &net.Dialer{Timeout: 5 * time.Second}
			return tls.DialWithDialer(d, "tcp", addr("tls"), pki.clientTLS())
		},
		"ws":  wsDial("ws://"+addr("ws")+"/mqtt", nil),
		"wss": wsDial("wss://"+addr("wss")+"/mqtt", pki.clientTLS()),
		"quic": func() (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return transport.DialQUIC(ctx, addr("quic"), pki.clientTLS("mqtt"))
		},
	}
	return b, dials
}

// wsDial dials MQTT over WebSocket (subprotocol "mqtt") with
// coder/websocket and returns the byte stream.
func wsDial(url string, tc *tls.Config) dialFunc {
	return func() (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		opts := &websocket.DialOptions{Subprotocols: []string{"mqtt"}}
		if tc != nil {
			opts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		}
		c, _, err := websocket.Dial(ctx, url, opts)
		if err != nil {
			return nil, err
		}
		c.SetReadLimit(-1)
		return websocket.NetConn(context.Background(), c, websocket.MessageBinary), nil
	}
}

// seedSeconds is the length of each seed-scenario run:
// NANOACTOR_SEED_SECONDS, default 10 as the transports issue asks.
func seedSeconds() int {
	if s, err := strconv.Atoi(os.Getenv("NANOACTOR_SEED_SECONDS")); err == nil && s > 0 {
		return s
	}
	return 10
}

// TestTransportsBasic sends QoS 0/1/2 through every transport to a
// subscriber on every other transport: one MQTT layer over all of them.
func TestTransportsBasic(t *testing.T) {
	pki := newTestPKI(t)
	_, dials := allTransports(t, pki, "")
	names := []string{"tcp", "tls", "ws", "wss", "quic"}
	for _, from := range names {
		for _, to := range names {
			t.Run(from+"->"+to, func(t *testing.T) {
				t.Parallel()
				topic := "x/" + from + "/" + to
				sub := startStreamSub(t, dials[to], "s-"+from+"-"+to, topic)
				runStreamPub(t, dials[from], "p-"+from+"-"+to, topic, 50, 1000)
				eventually(t, 10*time.Second, "50 messages", func() bool { return sub.count() >= 50 })
				sub.close()
				sub.check(t, 50)
			})
		}
	}
}

// TestSeedScenario is the failure nanoactor exists to make impossible
// (NanoMQ over TLS, QoS 2 at ~1000 msg/s, a lost ack wedging the
// connection): one publisher and one subscriber at QoS 2, 1000 msg/s for
// 10 s, over TLS, WSS and QUIC. Every message arrives exactly once, in
// order, and progress never pauses longer than 1 s.
func TestSeedScenario(t *testing.T) {
	pki := newTestPKI(t)
	_, dials := allTransports(t, pki, "")
	secs := seedSeconds()
	for _, tr := range []string{"tls", "wss", "quic"} {
		t.Run(tr, func(t *testing.T) {
			n := 1000 * secs
			topic := "seed/" + tr
			sub := startStreamSub(t, dials[tr], "seed-sub-"+tr, topic)
			start := time.Now()
			pub := runStreamPub(t, dials[tr], "seed-pub-"+tr, topic, n, 1000)
			eventually(t, 20*time.Second, "every message", func() bool { return sub.count() >= n })
			took := time.Since(start)
			sub.close()
			sub.check(t, n)
			t.Logf("%s: %d QoS 2 messages in %v (%.0f msg/s); publisher longest pause %v; subscriber longest gap %v; reconnects %d",
				tr, n, took.Round(time.Millisecond), float64(n)/took.Seconds(), pub.maxPause, sub.maxGap, sub.reconns.Load())
			if pub.maxPause > time.Second || sub.maxGap > time.Second {
				t.Errorf("progress paused: publisher %v, subscriber %v; want under 1s", pub.maxPause, sub.maxGap)
			}
			if sub.reconns.Load() != 0 {
				t.Errorf("subscriber reconnected %d times without any fault", sub.reconns.Load())
			}
		})
	}
}

// TestSeedScenarioWithFaults runs the TLS seed scenario while the fault
// seam breaks the subscriber's pipe every 2 s, each way in turn (send
// error, writer panic, invalid buffer, stall, connection actor panic).
// The subscriber reconnects with its persistent session and still gets
// every message exactly once and in order; an unrelated client never
// pauses over 1 s; the supervisor log shows each event with its reason.
func TestSeedScenarioWithFaults(t *testing.T) {
	pki := newTestPKI(t)
	b, dials := allTransports(t, pki, "[mqtt]\nprogress_timeout = \"500ms\"\n")
	b.node.Broker().EnableFaults()
	secs := seedSeconds()
	if secs < 10 {
		secs = 10 // room for all five kinds at one every 2 s
	}
	dial := dials["tls"]
	sub := startStreamSub(t, dial, "sf-sub", "sf/t")
	pp := startPingPong(t, dials["tls"], "sf-other")
	stop := breakPipes(b, "sf-sub", time.Second, 2*time.Second)
	n := 1000 * secs
	pub := runStreamPub(t, dial, "sf-pub", "sf/t", n, 1000)
	got := stop()
	eventually(t, 30*time.Second, "every message", func() bool { return sub.count() >= n })
	sub.close()
	pp.finish(t)
	sub.check(t, n)
	t.Logf("faults %v; subscriber reconnects %d; publisher longest pause %v; unrelated client %d round trips, longest gap %v",
		got, sub.reconns.Load(), pub.maxPause, pp.n, pp.maxGap)
	if len(got) < len(faultKinds) {
		t.Errorf("applied %v, want every kind", got)
	}
	if pp.maxGap > time.Second {
		t.Errorf("unrelated client paused %v, want under 1s", pp.maxGap)
	}
	if pub.maxPause > time.Second {
		t.Errorf("publisher paused %v, want under 1s", pub.maxPause)
	}
	for _, reason := range []string{"write error", "panic", "invalid buffer", "write stalled", "injected fault"} {
		if b.logs.Count(`"msg":"supervision"`, reason) == 0 {
			t.Errorf("no supervision log line with reason %q", reason)
		}
	}
}

// TestSoak runs the TLS QoS 2 seed scenario for a long time at a high
// rate: NANOACTOR_SOAK=10m (duration) and NANOACTOR_SOAK_RATE=10000
// (msg/s). Skipped unless NANOACTOR_SOAK is set; `just soak` runs it.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("NANOACTOR_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("set NANOACTOR_SOAK=10m (and NANOACTOR_SOAK_RATE) to run the soak; `just soak` does")
	}
	rate := 10000
	if r, err := strconv.Atoi(os.Getenv("NANOACTOR_SOAK_RATE")); err == nil && r > 0 {
		rate = r
	}
	pki := newTestPKI(t)
	b, dials := allTransports(t, pki, "[log]\nlevel = \"info\"\nformat = \"json\"\n")
	n := int(d.Seconds()) * rate
	sub := startStreamSub(t, dials["tls"], "soak-sub", "soak/t")
	start := time.Now()
	pub := runStreamPubWindow(t, dials["tls"], "soak-pub", "soak/t", n, rate, 500)
	eventually(t, time.Minute, "every message", func() bool { return sub.count() >= n })
	took := time.Since(start)
	sub.close()
	sub.check(t, n)
	st := b.node.Broker().Stats()
	t.Logf("soak over TLS: %d QoS 2 messages in %v = %.0f msg/s (target %d); publisher longest pause %v; subscriber longest gap %v; reconnects %d; dropped %d",
		n, took.Round(time.Second), float64(n)/took.Seconds(), rate, pub.maxPause, sub.maxGap, sub.reconns.Load(), st.Dropped)
	if pub.maxPause > time.Second || sub.maxGap > time.Second {
		t.Errorf("progress paused: publisher %v, subscriber %v", pub.maxPause, sub.maxGap)
	}
}

// TestTransportsIdle: a connection that stays quiet for longer than the
// broker's idle thresholds (its reader parks on plain TCP, its writer
// goroutine exits on every transport) is still served afterwards, on every
// transport: a read deadline used to detect idleness must not end it (on
// WebSocket a deadline that passes during a Read closes the connection).
func TestTransportsIdle(t *testing.T) {
	pki := newTestPKI(t)
	_, dials := allTransports(t, pki, "")
	for _, name := range []string{"tcp", "tls", "ws", "wss", "quic"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, _, err := streamConnect(dials[name], "idle-"+name, true)
			if err != nil {
				t.Fatal(err)
			}
			defer c.nc.Close()
			time.Sleep(2500 * time.Millisecond) // idle past the 1 s park and writer thresholds, twice
			// Keepalive traffic: a PINGREQ wakes the parked reader, which
			// parks again within a millisecond; the next PINGREQ wakes it
			// again.
			for i := range 3 {
				if err := c.send(&protocol.Pingreq{}); err != nil {
					t.Fatal(err)
				}
				if p, err := c.next(); err != nil || p.Type() != protocol.TypePingresp {
					t.Fatalf("ping %d after idling: %v, %v; want PINGRESP", i, p, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			topic := "idle/" + name
			if err := c.send(&protocol.Subscribe{PacketID: 1, Filters: []protocol.Subscription{{Filter: []byte(topic), QoS: 1}}}); err != nil {
				t.Fatal(err)
			}
			if p, err := c.next(); err != nil || p.Type() != protocol.TypeSuback {
				t.Fatalf("after idling: %v, %v; want SUBACK", p, err)
			}
			time.Sleep(2500 * time.Millisecond)
			if err := c.send(&protocol.Publish{Topic: []byte(topic), QoS: 1, PacketID: 2, Payload: []byte("hi")}); err != nil {
				t.Fatal(err)
			}
			for range 2 { // PUBACK and our own message, in either order
				p, err := c.next()
				if err != nil {
					t.Fatalf("after idling again: %v", err)
				}
				if pub, ok := p.(*protocol.Publish); ok && string(pub.Payload) != "hi" {
					t.Fatalf("got %q", pub.Payload)
				}
			}
		})
	}
}
