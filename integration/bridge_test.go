package integration

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/nanoactor/nanoactor/protocol"
)

// bridgeTOML is a [[bridge]] block to url with the given topic rules
// (each a complete [[bridge.topic]] body) and extra bridge keys.
func bridgeTOML(name, url string, protoVer int, extra string, topics ...string) string {
	return bridgeTOMLID(name, "edge-"+name, url, protoVer, extra, topics...)
}

// bridgeTOMLID is bridgeTOML with the client id at the remote.
func bridgeTOMLID(name, clientID, url string, protoVer int, extra string, topics ...string) string {
	s := fmt.Sprintf("[[bridge]]\nname = %q\nurl = %q\nproto_ver = %d\nclient_id = %q\n"+
		"keepalive = \"10s\"\nbackoff_min = \"100ms\"\nbackoff_max = \"1s\"\n"+
		"connect_timeout = \"5s\"\nmax_inflight = 64\noutbox_max_messages = 100000\noutbox_max_bytes = \"64MiB\"\n"+
		"outbox_drop = \"oldest\"\nsession_expiry = \"1h\"\n%s",
		name, url, protoVer, clientID, extra)
	for _, tp := range topics {
		s += "[[bridge.topic]]\n" + tp + "\n"
	}
	return s
}

func TestBridgeSmoke(t *testing.T) {
	remote := startBroker(t, "")
	local := startBroker(t, bridgeTOML("cloud", "mqtt-tcp://"+remote.addr, 5, "",
		"pattern = \"sensors/#\"\ndirection = \"out\"\nqos = 1\nremote_prefix = \"edge-1/\"\nlocal_prefix = \"\"\nretain = true",
		"pattern = \"cmd/#\"\ndirection = \"in\"\nqos = 1\nremote_prefix = \"edge-1/\"\nlocal_prefix = \"\"\nretain = true"))
	eventually(t, 5*time.Second, "bridge connected", func() bool { return local.node.Bridges()[0].Status().Connected })

	rsub := v5Simple(t, remote, "rsub")
	rsub.sub(paho.SubscribeOptions{Topic: "edge-1/#", QoS: 1})
	lsub := v5Simple(t, local, "lsub")
	lsub.sub(paho.SubscribeOptions{Topic: "cmd/#", QoS: 1})
	time.Sleep(200 * time.Millisecond)

	lpub := v5Simple(t, local, "lpub")
	lpub.pub(&paho.Publish{Topic: "sensors/t1", QoS: 1, Payload: []byte("21.5")})
	p := rsub.next()
	if p.Topic != "edge-1/sensors/t1" || string(p.Payload) != "21.5" {
		t.Fatalf("remote got %s %q", p.Topic, p.Payload)
	}
	rpub := v5Simple(t, remote, "rpub")
	rpub.pub(&paho.Publish{Topic: "edge-1/cmd/reboot", QoS: 1, Payload: []byte("now")})
	p = lsub.next()
	if p.Topic != "cmd/reboot" || string(p.Payload) != "now" {
		t.Fatalf("local got %s %q", p.Topic, p.Payload)
	}
	t.Logf("status %+v", local.node.Bridges()[0].Status())
	// The status line comes at the first tick, then every minute.
	eventually(t, 3*time.Second, "a bridge status line", func() bool {
		return local.logs.Count(`"msg":"bridge status"`, `"bridge":"cloud"`, `"connected":true`) >= 1
	})
}

// bridgeRemote starts a remote nanoactor with tcp, tls and quic listeners
// on the test PKI and returns it with the bridge URL of each transport.
func bridgeRemote(t *testing.T, pki *testPKI) (*broker, map[string]string) {
	t.Helper()
	remote := startBroker(t, fmt.Sprintf(`
[node]
name = "remote"

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
name = "quic"
protocol = "quic"
bind = "127.0.0.1:0"
cert_file = %q
key_file = %q
`, pki.certFile, pki.keyFile, pki.certFile, pki.keyFile))
	addr := func(name string) string { return remote.node.Addr(name).String() }
	return remote, map[string]string{
		"tcp":  "mqtt-tcp://" + addr("tcp"),
		"tls":  "tls+mqtt-tcp://" + addr("tls"),
		"quic": "mqtt-quic://" + addr("quic"),
	}
}

func bridgeTLSKeys(pki *testPKI, scheme string) string {
	if scheme == "tcp" {
		return ""
	}
	return fmt.Sprintf("[bridge.tls]\nca_file = %q\n", pki.caFile)
}

func waitBridge(t *testing.T, b *broker) {
	t.Helper()
	eventually(t, 10*time.Second, "bridge connected", func() bool {
		for _, br := range b.node.Bridges() {
			if !br.Status().Connected {
				return false
			}
		}
		return true
	})
	time.Sleep(100 * time.Millisecond) // the subscriptions' SUBACKs
}

// TestBridgeTransports runs nanoactor → nanoactor bridges over TCP, TLS
// and QUIC, with v5 and 3.1.1, and sends QoS 0, 1 and 2 out, in and both
// ways with prefixes: each message arrives once, on the mapped topic, at
// the QoS asked, and nothing echoes back.
func TestBridgeTransports(t *testing.T) {
	pki := newTestPKI(t)
	remote, urls := bridgeRemote(t, pki)
	for _, scheme := range []string{"tcp", "tls", "quic"} {
		for _, ver := range []int{4, 5} {
			t.Run(fmt.Sprintf("%s/v%d", scheme, ver), func(t *testing.T) {
				id := fmt.Sprintf("e%s%d", scheme, ver)
				local := startBroker(t, bridgeTOMLID("cloud", id, urls[scheme], ver, bridgeTLSKeys(pki, scheme),
					fmt.Sprintf("pattern = \"up/#\"\ndirection = \"out\"\nqos = 2\nremote_prefix = \"%s/\"", id),
					fmt.Sprintf("pattern = \"down/#\"\ndirection = \"in\"\nqos = 2\nremote_prefix = \"%s/\"\nlocal_prefix = \"cloud/\"", id),
					fmt.Sprintf("pattern = \"sync/#\"\ndirection = \"both\"\nqos = 2\nremote_prefix = \"%s/\"", id)))
				waitBridge(t, local)
				lc := v5Simple(t, local, "lc")
				lc.sub(paho.SubscribeOptions{Topic: "#", QoS: 2})
				rc := v5Simple(t, remote, "rc-"+id)
				rc.sub(paho.SubscribeOptions{Topic: id + "/#", QoS: 2})
				lp := v5Simple(t, local, "lp")
				rp := v5Simple(t, remote, "rp-"+id)
				time.Sleep(100 * time.Millisecond)

				expect := func(c *v5Client, topic, payload string, qos byte) {
					t.Helper()
					p := c.next()
					if p.Topic != topic || string(p.Payload) != payload || p.QoS != qos {
						t.Fatalf("got %s %q qos %d, want %s %q qos %d", p.Topic, p.Payload, p.QoS, topic, payload, qos)
					}
				}
				for q := byte(0); q <= 2; q++ {
					// out: local publisher; the local subscriber sees its own
					// copy, the remote one the mapped topic.
					msg := fmt.Sprintf("out-%d", q)
					lp.pub(&paho.Publish{Topic: "up/a", QoS: q, Payload: []byte(msg)})
					expect(lc, "up/a", msg, q)
					expect(rc, id+"/up/a", msg, q)

					msg = fmt.Sprintf("in-%d", q)
					rp.pub(&paho.Publish{Topic: id + "/down/b", QoS: q, Payload: []byte(msg)})
					expect(rc, id+"/down/b", msg, q)
					expect(lc, "cloud/down/b", msg, q)

					msg = fmt.Sprintf("both-l-%d", q)
					lp.pub(&paho.Publish{Topic: "sync/c", QoS: q, Payload: []byte(msg)})
					expect(lc, "sync/c", msg, q)
					expect(rc, id+"/sync/c", msg, q)

					msg = fmt.Sprintf("both-r-%d", q)
					rp.pub(&paho.Publish{Topic: id + "/sync/d", QoS: q, Payload: []byte(msg)})
					expect(rc, id+"/sync/d", msg, q)
					expect(lc, "sync/d", msg, q)
				}
				// Nothing echoed back or duplicated.
				lc.none(300 * time.Millisecond)
				rc.none(50 * time.Millisecond)
				st := local.node.Bridges()[0].Status()
				if st.Dropped != 0 || st.Outbox != 0 {
					t.Fatalf("status %+v", st)
				}
			})
		}
	}
}

// bridgeStream publishes n QoS 2 messages at rate per second on the local
// broker's "stream" topic, through a bridge to url, to a QoS 2 subscriber
// on the remote, and checks they arrive exactly once and in order.
func bridgeStream(t *testing.T, remote *broker, url, extra string, n, rate int) (*streamSub, *streamPub, *broker) {
	t.Helper()
	local := startBroker(t, bridgeTOML("cloud", url, 5, extra,
		"pattern = \"stream\"\ndirection = \"out\"\nqos = 2\nremote_prefix = \"edge-1/\""))
	waitBridge(t, local)
	sub := startStreamSub(t, tcpDial(remote.addr), "far-sub", "edge-1/stream")
	pub := runStreamPub(t, tcpDial(local.addr), "near-pub", "stream", n, rate)
	eventually(t, 30*time.Second, "every message at the far side", func() bool { return sub.count() >= n })
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive now
	sub.close()
	sub.check(t, n)
	return sub, pub, local
}

// TestBridgeTLSQoS2 is the NanoMQ failure this broker exists to avoid:
// over a TLS bridge, QoS 2 at 1000 msg/s for 10 s arrives exactly once, in
// order, with no pause over 1 s.
func TestBridgeTLSQoS2(t *testing.T) {
	pki := newTestPKI(t)
	remote, urls := bridgeRemote(t, pki)
	sub, pub, local := bridgeStream(t, remote, urls["tls"], bridgeTLSKeys(pki, "tls"), 10000, 1000)
	st := local.node.Bridges()[0].Status()
	t.Logf("far side: longest gap %v; publisher: longest pause %v; bridge %+v", sub.maxGap, pub.maxPause, st)
	if sub.maxGap > time.Second {
		t.Errorf("far side paused %v (over 1 s)", sub.maxGap)
	}
	if st.Dropped != 0 || st.Reconnects != 0 {
		t.Errorf("bridge status %+v", st)
	}
}

// cutProxy is a TCP proxy that resets both sides of every connection
// through it every period.
type cutProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cuts   atomic.Int64
	stop   chan struct{}
}

func startCutProxy(t *testing.T, target string, period time.Duration) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l, target: target, stop: make(chan struct{})}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			go func() { io.Copy(u, c); u.Close() }()
			go func() { io.Copy(c, u); c.Close() }()
		}
	}()
	go func() {
		tk := time.NewTicker(period)
		defer tk.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tk.C:
				p.cut()
			}
		}
	}()
	t.Cleanup(func() { close(p.stop); l.Close(); p.cut() })
	return p
}

// cut resets every connection: SO_LINGER 0 makes Close send RST.
func (p *cutProxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
	if len(conns) > 0 {
		p.cuts.Add(1)
	}
}

// TestBridgeLinkCuts sends a QoS 2 stream through a link that is reset
// every 1.5 s, out with v5 and 3.1.1 and in with v5: still exactly once
// and in order, and each pause lasts only as long as the reconnection.
func TestBridgeLinkCuts(t *testing.T) {
	for _, tc := range []struct {
		dir string
		ver int
	}{{"out", 5}, {"out", 4}, {"in", 5}, {"in", 4}} {
		t.Run(fmt.Sprintf("%s/v%d", tc.dir, tc.ver), func(t *testing.T) {
			remote := startBroker(t, "")
			proxy := startCutProxy(t, remote.addr, 1500*time.Millisecond)
			local := startBroker(t, bridgeTOML("cloud", "mqtt-tcp://"+proxy.l.Addr().String(), tc.ver, "",
				fmt.Sprintf("pattern = \"stream\"\ndirection = %q\nqos = 2\nremote_prefix = \"edge-1/\"", tc.dir)))
			waitBridge(t, local)
			const n = 6000
			var sub *streamSub
			var pub *streamPub
			if tc.dir == "out" {
				sub = startStreamSub(t, tcpDial(remote.addr), "far-sub", "edge-1/stream")
				pub = runStreamPub(t, tcpDial(local.addr), "near-pub", "stream", n, 1000)
			} else {
				sub = startStreamSub(t, tcpDial(local.addr), "near-sub", "stream")
				pub = runStreamPub(t, tcpDial(remote.addr), "far-pub", "edge-1/stream", n, 1000)
			}
			eventually(t, 30*time.Second, "every message across", func() bool { return sub.count() >= n })
			time.Sleep(200 * time.Millisecond) // a duplicate would arrive now
			sub.close()
			sub.check(t, n)
			st := local.node.Bridges()[0].Status()
			t.Logf("cuts %d; receiver: longest gap %v; publisher: longest pause %v; bridge %+v",
				proxy.cuts.Load(), sub.maxGap, pub.maxPause, st)
			if proxy.cuts.Load() < 3 || st.Reconnects < 3 {
				t.Fatalf("only %d cuts, %d reconnects: the test did not exercise link flaps", proxy.cuts.Load(), st.Reconnects)
			}
			// backoff_min is 100ms (±25%), the reconnection a TCP handshake
			// and CONNACK on loopback: a pause of 1 s means the bridge waited
			// for something else.
			if sub.maxGap > time.Second {
				t.Errorf("receiver paused %v", sub.maxGap)
			}
			if st.Dropped != 0 {
				t.Errorf("bridge dropped: %+v", st)
			}
		})
	}
}

// TestBridgeRemoteLimits: the bridge honours the remote's Receive Maximum
// (the remote closes a client that exceeds it, 0x93), Maximum Packet Size
// (a message too large for the remote is dropped and counted, the link
// stays up) and Topic Alias Maximum (aliases are used, and resolve to the
// right topics at the remote).
func TestBridgeRemoteLimits(t *testing.T) {
	remote := startBroker(t, "[mqtt]\nreceive_maximum = 4\nmax_packet_size = \"2KiB\"\nconnect_packet_max = \"1KiB\"\ntopic_alias_maximum = 3\n")
	_, _, local := bridgeStream(t, remote, "mqtt-tcp://"+remote.addr, "", 3000, 3000)
	br := local.node.Bridges()[0]
	if st := br.Status(); st.Reconnects != 0 || st.Dropped != 0 {
		t.Fatalf("the remote closed the bridge or it dropped: %+v", st)
	}
	if n := remote.logs.Count("edge-cloud", "disconnected"); n != 0 {
		t.Fatalf("remote logged %d disconnections of the bridge", n)
	}

	// Too large for the remote: dropped, counted; the next one still goes.
	local2 := startBroker(t, bridgeTOMLID("big", "edge-big", "mqtt-tcp://"+remote.addr, 5, "",
		"pattern = \"big/#\"\ndirection = \"out\"\nqos = 1\nremote_prefix = \"x/\""))
	waitBridge(t, local2)
	rc := v5Simple(t, remote, "rc-big")
	rc.sub(paho.SubscribeOptions{Topic: "x/#", QoS: 1})
	lp := v5Simple(t, local2, "lp-big")
	lp.pub(&paho.Publish{Topic: "big/a", QoS: 1, Payload: make([]byte, 4096)})
	for i := range 6 { // more topics than the 3 aliases
		lp.pub(&paho.Publish{Topic: fmt.Sprintf("big/t%d", i%5), QoS: 1, Payload: []byte{byte(i)}})
	}
	for i := range 6 {
		p := rc.next()
		if want := fmt.Sprintf("x/big/t%d", i%5); p.Topic != want || len(p.Payload) != 1 || p.Payload[0] != byte(i) {
			t.Fatalf("message %d: got %s %v, want %s", i, p.Topic, p.Payload, want)
		}
	}
	st := local2.node.Bridges()[0].Status()
	if st.Dropped != 1 || st.Reconnects != 0 || !st.Connected {
		t.Fatalf("status %+v: want the large message dropped and the link kept", st)
	}
	if local2.logs.Count("bridge dropped messages", "Maximum Packet Size") != 1 {
		t.Fatalf("no drop line for the large message")
	}
}

// freezeProxy forwards TCP until frozen; frozen, it keeps the connections
// open and forwards nothing (a link that died without a FIN).
type freezeProxy struct {
	l      net.Listener
	frozen atomic.Bool
}

func startFreezeProxy(t *testing.T, target string) *freezeProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{l: l}
	pump := func(dst, src net.Conn) {
		defer dst.Close()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			for p.frozen.Load() {
				time.Sleep(10 * time.Millisecond)
			}
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if p.frozen.Load() {
				c.Close()
				continue
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			t.Cleanup(func() { c.Close(); u.Close() })
			go pump(u, c)
			go pump(c, u)
		}
	}()
	t.Cleanup(func() { l.Close() })
	return p
}

// TestBridgeKeepaliveDeadLink: a link that goes silent without closing is
// detected by keepalive within 1.5 × keepalive, and the bridge reconnects
// when the path is back.
func TestBridgeKeepaliveDeadLink(t *testing.T) {
	remote := startBroker(t, "")
	proxy := startFreezeProxy(t, remote.addr)
	local := startBroker(t, strings.Replace(bridgeTOML("cloud", "mqtt-tcp://"+proxy.l.Addr().String(), 5, "",
		"pattern = \"a/#\"\ndirection = \"out\"\nqos = 1"), "keepalive = \"10s\"", "keepalive = \"2s\"", 1))
	waitBridge(t, local)
	br := local.node.Bridges()[0]
	proxy.frozen.Store(true)
	frozeAt := time.Now()
	eventually(t, 10*time.Second, "the dead link detected", func() bool { return !br.Status().Connected })
	took := time.Since(frozeAt)
	if local.logs.Count("bridge disconnected", "1.5 × keepalive") != 1 {
		t.Fatalf("no keepalive disconnection line")
	}
	// Detection is due by 1.5 × 2 s after the last packet received; the
	// last one came at most 2 s / 2 (a ping period) before the freeze.
	if took > 3*time.Second+500*time.Millisecond {
		t.Errorf("dead link detected after %v, more than 1.5 × keepalive", took)
	}
	proxy.frozen.Store(false)
	eventually(t, 10*time.Second, "the bridge back", func() bool { return br.Status().Connected })
}

// TestBridgeRestartKeepsOutbox: a bridge actor that fails is restarted by
// the bridges supervisor with one log line, and its outbox survives: what
// was waiting for the remote arrives, in order, once the remote is up.
func TestBridgeRestartKeepsOutbox(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nobody listens there yet
	local := startBroker(t, bridgeTOML("cloud", "mqtt-tcp://"+addr, 5, "",
		"pattern = \"a/#\"\ndirection = \"out\"\nqos = 1\nremote_prefix = \"r/\""))
	br := local.node.Bridges()[0]
	lp := v5Simple(t, local, "lp")
	time.Sleep(200 * time.Millisecond) // the local subscription
	for i := range 50 {
		lp.pub(&paho.Publish{Topic: "a/x", QoS: 1, Payload: []byte(fmt.Sprint(i))})
	}
	eventually(t, 5*time.Second, "50 in the outbox", func() bool { return br.Status().Outbox == 50 })
	// Let the bridge's PUBACKs reach the local session first. One that the
	// local broker has not handled when the actor restarts (still in the
	// bridge's writer, which the link's close discards, or read after the
	// new link took the session over) leaves its message unacknowledged,
	// and the local broker redelivers it with DUP on the resumed session,
	// as QoS 1 allows [MQTT-4.4.0-1]: it would be in the outbox twice,
	// which is not what this test is about. (CI saw it once under -race on
	// a loaded machine: 54 after the restart.)
	time.Sleep(300 * time.Millisecond)
	br.InjectPanic()
	eventually(t, 5*time.Second, "the supervision line", func() bool {
		return local.logs.Count(`"tree":"bridges"`, `"directive":"restart"`) == 1
	})
	if got := br.Status().Outbox; got != 50 {
		t.Fatalf("outbox after restart: %d", got)
	}
	remote := startBroker(t, fmt.Sprintf("[[listener]]\nname = \"r\"\nprotocol = \"tcp\"\nbind = %q\n", addr))
	rc := v5Simple(t, remote, "rc")
	rc.sub(paho.SubscribeOptions{Topic: "r/#", QoS: 1})
	// The bridge's subscription-less session at the remote did not exist
	// while the remote was down, so the subscriber is in place before the
	// bridge connects only if it connects after; wait for both.
	eventually(t, 10*time.Second, "bridge connected", func() bool { return br.Status().Connected })
	for i := range 50 {
		p := rc.next()
		if string(p.Payload) != fmt.Sprint(i) || p.Topic != "r/a/x" {
			t.Fatalf("message %d: %s %q", i, p.Topic, p.Payload)
		}
	}
	rc.none(200 * time.Millisecond)
}

// TestBridgeReservedClientID: a network client cannot take the bridge's
// session in its own broker.
func TestBridgeReservedClientID(t *testing.T) {
	remote := startBroker(t, "")
	local := startBroker(t, bridgeTOML("cloud", "mqtt-tcp://"+remote.addr, 5, "",
		"pattern = \"a/#\"\ndirection = \"out\"\nqos = 1"))
	waitBridge(t, local)
	for _, level := range []protocol.Version{protocol.Version311, protocol.Version5} {
		c := rawDial(t, local, level)
		c.send(&protocol.Connect{Level: level, CleanStart: true, ClientID: []byte("$bridge/cloud"), KeepAlive: 30})
		in := c.next(rawWait)
		ack, ok := in.p.(*protocol.Connack)
		// 0x85 in v5; 3.1.1 return code 0x02 (Identifier rejected).
		if !ok || ack.Reason != protocol.ReasonClientIdentifierNotValid || level < protocol.Version5 && in.body[1] != 0x02 {
			t.Fatalf("level %d: got %v (body % x)", level, in.p, in.body)
		}
	}
	if st := local.node.Bridges()[0].Status(); !st.Connected || st.Reconnects != 0 {
		t.Fatalf("bridge disturbed: %+v", st)
	}
}

// TestBridgeStaleQoS2State: the remote still holds the bridge's session
// from before this broker started, with a QoS 2 exchange half done (PUBREC
// sent, no PUBREL) on packet identifier 1. The bridge's first QoS 2
// message after the start uses identifier 1 too, and must still be
// delivered, not taken for a resend.
func TestBridgeStaleQoS2State(t *testing.T) {
	remote := startBroker(t, "")
	for _, ver := range []protocol.Version{protocol.Version5, protocol.Version311} {
		id := fmt.Sprintf("edge-stale-%d", ver)
		c := rawDial(t, remote, ver)
		cp := &protocol.Connect{Level: ver, ClientID: []byte(id), KeepAlive: 30}
		if ver == protocol.Version5 {
			cp.Props.SessionExpiry = 3600
			cp.Props.Set(protocol.PropSessionExpiry)
		}
		c.send(cp)
		c.expectConnack(protocol.ReasonSuccess)
		c.send(&protocol.Publish{Topic: []byte("old/x"), Payload: []byte("old"), QoS: 2, PacketID: 1})
		c.nextAck(protocol.TypePubrec, 1)
		c.nc.Close()

		rc := v5Simple(t, remote, fmt.Sprintf("rc-stale-%d", ver))
		rc.sub(paho.SubscribeOptions{Topic: "r/#", QoS: 2})
		local := startBroker(t, bridgeTOMLID("cloud", id, "mqtt-tcp://"+remote.addr, int(ver), "",
			"pattern = \"a/#\"\ndirection = \"out\"\nqos = 2\nremote_prefix = \"r/\""))
		waitBridge(t, local)
		lp := v5Simple(t, local, "lp")
		lp.pub(&paho.Publish{Topic: "a/new", QoS: 2, Payload: []byte("new")})
		if p := rc.next(); p.Topic != "r/a/new" || string(p.Payload) != "new" {
			t.Fatalf("v%d: got %s %q", ver, p.Topic, p.Payload)
		}
		if local.logs.Count("released the remote session's QoS 2 identifiers") != 1 {
			t.Fatalf("v%d: no sweep line", ver)
		}
	}
}

// TestBridgeMosquittoRestart: the bridge restarts (a new broker process, as
// far as the remote can tell) while Debian's mosquitto keeps its session:
// the first connection finds the session present, releases the stale QoS 2
// identifiers, and QoS 2 messages go through, exactly once, with v5 and
// 3.1.1.
func TestBridgeMosquittoRestart(t *testing.T) {
	mosq, mlog := bmStartMosquitto(t)
	for _, ver := range []int{4, 5} {
		id := fmt.Sprintf("edge-restart-%d", ver)
		doc := bridgeTOMLID("cloud", id, "mqtt-tcp://"+mosq, ver, "",
			"pattern = \"a/#\"\ndirection = \"out\"\nqos = 2\nremote_prefix = \""+id+"/\"")
		// The first run: connect, so that mosquitto has the session.
		first := startBroker(t, doc)
		waitBridge(t, first)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := first.node.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		first.node = nil

		rc := bmConnect(t, mosq, 5, "rc-"+id)
		rc.sub(id+"/#", 2)
		second := startBroker(t, doc)
		waitBridge(t, second)
		lp := v5Simple(t, second, "lp")
		for i := range 20 {
			lp.pub(&paho.Publish{Topic: "a/x", QoS: 2, Payload: []byte(fmt.Sprint(i))})
		}
		for i := range 20 {
			bmExpect(t, rc, "after the restart", id+"/a/x", fmt.Sprint(i), 2)
		}
		bmNone(t, "no duplicate", rc)
		if second.logs.Count("released the remote session's QoS 2 identifiers") != 1 {
			t.Fatalf("v%d: no sweep on a present session", ver)
		}
		if st := second.node.Bridges()[0].Status(); st.Reconnects != 0 || !st.Connected {
			t.Fatalf("v%d: mosquitto dropped the bridge after the sweep: %+v\n%s", ver, st, mlog.String())
		}
	}
}
