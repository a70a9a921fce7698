package integration

// Bridges from nanoactor to Debian's mosquitto (2.0) as the remote broker,
// over mqtt-tcp, with proto_ver 4 (Mosquitto's bridge bit) and 5 (No
// Local): QoS 0, 1 and 2 out, in and both ways with local_prefix and
// remote_prefix applied, each message once on the mapped topic at the
// QoS asked and nothing echoed back; retained messages cross with RETAIN
// (rule retain = true) or without it (retain = false); a v5 user property
// crosses both ways. Real clients on both sides: paho.mqtt.golang (3.1.1)
// for proto_ver 4, paho.golang (5.0) for proto_ver 5.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// bmQuiet is how long a test waits to be reasonably sure that a message
// (an echo, a duplicate) does not come.
const bmQuiet = 300 * time.Millisecond

// bmLog collects an external broker's output.
type bmLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *bmLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *bmLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// bmStartMosquitto runs Debian's mosquitto on a free loopback port with
// anonymous access, waits until it accepts connections and returns its
// host:port and its log. It is killed when the test ends; its log is
// printed if the test failed.
func bmStartMosquitto(t *testing.T) (string, *bmLog) {
	t.Helper()
	path := needProgram(t, "mosquitto")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	text := "listener " + strconv.Itoa(port) + " 127.0.0.1\nallow_anonymous true\n" +
		"persistence false\nlog_dest stderr\nlog_type all\nconnection_messages true\n"
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &bmLog{}
	cmd := exec.Command(path, "-c", conf)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", out.String())
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("mosquitto exited at start:\n%s", out.String())
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr, out
		}
	}
	t.Fatalf("mosquitto did not start listening on %s:\n%s", addr, out.String())
	return "", nil
}

// bmMsg is one message as a client received it, whichever the library.
type bmMsg struct {
	Topic   string
	Payload string
	QoS     byte
	Retain  bool
	User    map[string]string // v5 user properties
}

func (m bmMsg) String() string {
	return fmt.Sprintf("%s %q qos=%d retain=%v user=%v", m.Topic, m.Payload, m.QoS, m.Retain, m.User)
}

// bmClient is a connected MQTT client collecting what it receives;
// messages on topics ending in "/probe" (readiness probes) are skipped.
type bmClient interface {
	sub(filter string, qos byte)
	pub(topic string, qos byte, retain bool, payload string, user ...string)
	inbox() chan bmMsg
}

// bmV5 is a paho.golang (MQTT 5.0) client.
type bmV5 struct {
	c  *v5Client
	in chan bmMsg
}

func (c *bmV5) sub(filter string, qos byte) {
	c.c.sub(paho.SubscribeOptions{Topic: filter, QoS: qos})
}

func (c *bmV5) pub(topic string, qos byte, retain bool, payload string, user ...string) {
	p := &paho.Publish{Topic: topic, QoS: qos, Retain: retain, Payload: []byte(payload)}
	if len(user) > 0 {
		p.Properties = &paho.PublishProperties{}
		for i := 0; i+1 < len(user); i += 2 {
			p.Properties.User.Add(user[i], user[i+1])
		}
	}
	c.c.pub(p)
}

func (c *bmV5) inbox() chan bmMsg { return c.in }

// bmP3 is a paho.mqtt.golang (MQTT 3.1.1) client.
type bmP3 struct {
	t  *testing.T
	c  *p3Client
	in chan bmMsg
}

func (c *bmP3) sub(filter string, qos byte) {
	if got := c.c.sub(c.t, filter, qos); got != qos {
		c.t.Fatalf("subscribe %q qos %d: granted %d", filter, qos, got)
	}
}

func (c *bmP3) pub(topic string, qos byte, retain bool, payload string, _ ...string) {
	c.c.pub(c.t, topic, qos, retain, payload)
}

func (c *bmP3) inbox() chan bmMsg { return c.in }

// bmConnect connects a client of the MQTT version matching the bridge's
// proto_ver (4: 3.1.1, 5: 5.0) to addr with a clean session.
func bmConnect(t *testing.T, addr string, ver int, id string) bmClient {
	t.Helper()
	in := make(chan bmMsg, 4096)
	keep := func(m bmMsg) {
		if !strings.HasSuffix(m.Topic, "/probe") {
			in <- m
		}
	}
	if ver == 5 {
		c := v5Simple(t, &broker{t: t, addr: addr}, id)
		bmPump(t, c.msgs, func(p *paho.Publish) {
			m := bmMsg{Topic: p.Topic, Payload: string(p.Payload), QoS: p.QoS, Retain: p.Retain}
			if p.Properties != nil && len(p.Properties.User) > 0 {
				m.User = map[string]string{}
				for _, u := range p.Properties.User {
					m.User[u.Key] = u.Value
				}
			}
			keep(m)
		})
		return &bmV5{c: c, in: in}
	}
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(p3Wait).SetWriteTimeout(p3Wait).SetKeepAlive(30 * time.Second).
		SetOrderMatters(true)
	c := p3Connect(t, o)
	bmPump(t, c.in.ch, func(m p3Msg) {
		keep(bmMsg{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retained})
	})
	return &bmP3{t: t, c: c, in: in}
}

// bmPump hands what arrives on src to f until the test ends (the clients
// never close their channels).
func bmPump[T any](t *testing.T, src <-chan T, f func(T)) {
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	go func() {
		for {
			select {
			case v := <-src:
				f(v)
			case <-done:
				return
			}
		}
	}()
}

// bmNext returns c's next message or fails the test.
func bmNext(t *testing.T, c bmClient, what string) bmMsg {
	t.Helper()
	select {
	case m := <-c.inbox():
		return m
	case <-time.After(p3Wait):
		t.Fatalf("%s: no message within %v", what, p3Wait)
		return bmMsg{}
	}
}

// bmExpect checks c's next message.
func bmExpect(t *testing.T, c bmClient, what, topic, payload string, qos byte) bmMsg {
	t.Helper()
	m := bmNext(t, c, what)
	if m.Topic != topic || m.Payload != payload || m.QoS != qos {
		t.Fatalf("%s: got %v, want %s %q qos=%d", what, m, topic, payload, qos)
	}
	return m
}

// bmNone fails the test if any of cs receives a message within bmQuiet.
func bmNone(t *testing.T, what string, cs ...bmClient) {
	t.Helper()
	deadline := time.After(bmQuiet)
	for {
		for _, c := range cs {
			select {
			case m := <-c.inbox():
				t.Fatalf("%s: unexpected message %v (an echo or a duplicate)", what, m)
			default:
			}
		}
		select {
		case <-deadline:
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestBridgeMosquitto(t *testing.T) {
	mosq, mlog := bmStartMosquitto(t)
	for _, ver := range []int{4, 5} {
		t.Run(fmt.Sprintf("v%d", ver), func(t *testing.T) {
			t.Parallel()
			bmRun(t, mosq, mlog, ver)
		})
	}
}

// bmRun runs the matrix for one proto_ver against the mosquitto at mosq.
func bmRun(t *testing.T, mosq string, mlog *bmLog, ver int) {
	rp := fmt.Sprintf("edge-v%d/", ver) // remote prefix: this subtest's space at mosquitto
	rule := func(pattern, dir string, qos int, local string, retain bool) string {
		return fmt.Sprintf("pattern = %q\ndirection = %q\nqos = %d\nlocal_prefix = %q\nremote_prefix = %q\nretain = %v",
			pattern, dir, qos, local, rp, retain)
	}
	local := startBroker(t, bridgeTOML(fmt.Sprintf("mosq%d", ver), "mqtt-tcp://"+mosq, ver, "",
		rule("up/#", "out", 2, "site/", true),
		rule("down/#", "in", 2, "cloud/", true),
		rule("sync/#", "both", 2, "l/", true),
		rule("cap/#", "both", 1, "", true),
		rule("flat/#", "both", 2, "", false),
	))
	eventually(t, 10*time.Second, "bridge connected to mosquitto", func() bool {
		return local.node.Bridges()[0].Status().Connected
	})
	// Mosquitto takes a proto_ver 4 bridge for one (the bridge bit of
	// try_private: No Local, Retain As Published) and a v5 one as a v5
	// client ("p2" is Mosquitto's number for 3.1.1).
	want := fmt.Sprintf("New client connected from 127.0.0.1:%%d as edge-mosq%d (p5,", ver)
	if ver == 4 {
		want = "New bridge connected from 127.0.0.1:%d as edge-mosq4 (p2,"
	}
	eventually(t, 5*time.Second, "mosquitto logging "+want, func() bool { return bmLogged(mlog.String(), want) })

	id := func(s string) string { return fmt.Sprintf("bm%d-%s", ver, s) }
	lc := bmConnect(t, local.addr, ver, id("lc")) // every local topic
	lc.sub("#", 2)
	rc := bmConnect(t, mosq, ver, id("rc")) // this subtest's remote topics
	rc.sub(rp+"#", 2)
	lp := bmConnect(t, local.addr, ver, id("lp"))
	rpub := bmConnect(t, mosq, ver, id("rp"))

	// Wait until each direction is through: the bridge's subscriptions at
	// both brokers are acknowledged. Inboxes skip probes, so late probe
	// copies do not disturb the checks below.
	bmWaitPath(t, ver, id("probe-out"), lp, "l/sync/probe", mosq, rp+"sync/probe")
	bmWaitPath(t, ver, id("probe-in"), rpub, rp+"sync/probe", local.addr, "l/sync/probe")

	type dirCase struct {
		name     string
		from, to bmClient // publisher's side subscriber, far side subscriber
		pub      bmClient
		topic    string // published
		farTopic string // expected at the far side; "" = must not cross
	}
	cases := []dirCase{
		{"out", lc, rc, lp, "site/up/a", rp + "up/a"},
		{"in", rc, lc, rpub, rp + "down/b", "cloud/down/b"},
		{"both/local-to-remote", lc, rc, lp, "l/sync/c", rp + "sync/c"},
		{"both/remote-to-local", rc, lc, rpub, rp + "sync/d", "l/sync/d"},
		// An out rule brings nothing in, an in rule sends nothing out.
		{"out-rule-not-in", rc, lc, rpub, rp + "up/e", ""},
		{"in-rule-not-out", lc, rc, lp, "cloud/down/f", ""},
	}
	for _, c := range cases {
		for q := byte(0); q <= 2; q++ {
			t.Run(fmt.Sprintf("%s/qos%d", c.name, q), func(t *testing.T) {
				payload := fmt.Sprintf("%s-qos%d", c.name, q)
				c.pub.pub(c.topic, q, false, payload)
				// The publisher's side sees it once (its own subscriber),
				// the far side once on the mapped topic at the QoS sent.
				bmExpect(t, c.from, "origin side", c.topic, payload, q)
				if c.farTopic != "" {
					m := bmExpect(t, c.to, "far side", c.farTopic, payload, q)
					if m.Retain {
						t.Fatalf("far side: live message %v with RETAIN set", m)
					}
				}
				bmNone(t, "after "+c.name, c.from, c.to)
			})
		}
	}

	// A rule's qos caps the QoS on the bridge: cap/# has qos 1.
	t.Run("qos-cap", func(t *testing.T) {
		lp.pub("cap/g", 2, false, "capped-out")
		bmExpect(t, lc, "origin side", "cap/g", "capped-out", 2)
		bmExpect(t, rc, "far side", rp+"cap/g", "capped-out", 1)
		rpub.pub(rp+"cap/h", 2, false, "capped-in")
		bmExpect(t, rc, "origin side", rp+"cap/h", "capped-in", 2)
		bmExpect(t, lc, "far side", "cap/h", "capped-in", 1)
		bmNone(t, "after qos-cap", lc, rc)
	})

	// Retained messages cross with RETAIN (retain = true): the far side
	// stores them, and a new subscription there gets them as retained.
	t.Run("retain", func(t *testing.T) {
		lp.pub("site/up/keep", 1, true, "kept-out")
		bmExpect(t, lc, "origin side", "site/up/keep", "kept-out", 1)
		bmExpect(t, rc, "far side (live)", rp+"up/keep", "kept-out", 1)
		fresh := bmConnect(t, mosq, ver, id("fresh-r"))
		fresh.sub(rp+"up/keep", 2)
		if m := bmExpect(t, fresh, "retained at mosquitto", rp+"up/keep", "kept-out", 1); !m.Retain {
			t.Fatalf("retained at mosquitto: %v without RETAIN", m)
		}

		rpub.pub(rp+"down/keep", 1, true, "kept-in")
		bmExpect(t, rc, "origin side", rp+"down/keep", "kept-in", 1)
		bmExpect(t, lc, "far side (live)", "cloud/down/keep", "kept-in", 1)
		freshL := bmConnect(t, local.addr, ver, id("fresh-l"))
		freshL.sub("cloud/down/keep", 2)
		if m := bmExpect(t, freshL, "retained at nanoactor", "cloud/down/keep", "kept-in", 1); !m.Retain {
			t.Fatalf("retained at nanoactor: %v without RETAIN", m)
		}

		// retain = false clears RETAIN: the far side stores nothing.
		lp.pub("flat/i", 1, true, "flat-out")
		bmExpect(t, lc, "origin side", "flat/i", "flat-out", 1)
		bmExpect(t, rc, "far side (live)", rp+"flat/i", "flat-out", 1)
		rpub.pub(rp+"flat/j", 1, true, "flat-in")
		bmExpect(t, rc, "origin side", rp+"flat/j", "flat-in", 1)
		bmExpect(t, lc, "far side (live)", "flat/j", "flat-in", 1)
		freshR2 := bmConnect(t, mosq, ver, id("fresh-r2"))
		freshR2.sub(rp+"flat/i", 2)
		freshL2 := bmConnect(t, local.addr, ver, id("fresh-l2"))
		freshL2.sub("flat/j", 2)
		bmNone(t, "retain = false", freshR2, freshL2, lc, rc, fresh, freshL)

		// Clearing a retained message crosses too (an empty retained
		// payload); it leaves both brokers clean.
		lp.pub("site/up/keep", 1, true, "")
		bmExpect(t, lc, "origin side", "site/up/keep", "", 1)
		bmExpect(t, rc, "far side", rp+"up/keep", "", 1)
		rpub.pub(rp+"down/keep", 1, true, "")
		bmExpect(t, rc, "origin side", rp+"down/keep", "", 1)
		bmExpect(t, lc, "far side", "cloud/down/keep", "", 1)
		bmNone(t, "after clearing", lc, rc)
		gone := bmConnect(t, mosq, ver, id("gone-r"))
		gone.sub(rp+"up/keep", 2)
		goneL := bmConnect(t, local.addr, ver, id("gone-l"))
		goneL.sub("cloud/down/keep", 2)
		bmNone(t, "cleared retained messages", gone, goneL)
	})

	if ver == 5 {
		t.Run("user-property", func(t *testing.T) {
			lp.pub("site/up/props", 1, false, "p-out", "origin", "edge", "unit", "C")
			bmExpect(t, lc, "origin side", "site/up/props", "p-out", 1)
			m := bmExpect(t, rc, "far side", rp+"up/props", "p-out", 1)
			if m.User["origin"] != "edge" || m.User["unit"] != "C" {
				t.Fatalf("at mosquitto: user properties %v, want origin=edge unit=C", m.User)
			}
			rpub.pub(rp+"down/props", 2, false, "p-in", "origin", "cloud")
			bmExpect(t, rc, "origin side", rp+"down/props", "p-in", 2)
			m = bmExpect(t, lc, "far side", "cloud/down/props", "p-in", 2)
			if m.User["origin"] != "cloud" {
				t.Fatalf("at nanoactor: user properties %v, want origin=cloud", m.User)
			}
			bmNone(t, "after user-property", lc, rc)
		})
	}

	st := local.node.Bridges()[0].Status()
	if st.Dropped != 0 || st.Outbox != 0 || st.Reconnects != 0 {
		t.Fatalf("bridge status %+v: want nothing dropped, an empty outbox and no reconnect", st)
	}
}

// bmWaitPath publishes QoS 0 probes on pubTopic with pub until a probe
// subscriber on the other broker (at subAddr, filter subTopic) gets one:
// the path through the bridge is up, its subscriptions acknowledged.
func bmWaitPath(t *testing.T, ver int, id string, pub bmClient, pubTopic, subAddr, subTopic string) {
	t.Helper()
	got := make(chan struct{}, 1)
	signal := func() {
		select {
		case got <- struct{}{}:
		default:
		}
	}
	if ver == 5 {
		c := v5Simple(t, &broker{t: t, addr: subAddr}, id)
		c.sub(paho.SubscribeOptions{Topic: subTopic, QoS: 0})
		bmPump(t, c.msgs, func(*paho.Publish) { signal() })
	} else {
		o := mqtt.NewClientOptions().AddBroker("tcp://" + subAddr).SetClientID(id).
			SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(p3Wait)
		c := p3Connect(t, o)
		c.sub(t, subTopic, 0)
		bmPump(t, c.in.ch, func(p3Msg) { signal() })
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pub.pub(pubTopic, 0, false, "probe")
		select {
		case <-got:
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no probe from %s reached %s within 10s", pubTopic, subTopic)
		}
	}
}

// bmLogged reports whether a line of log matches format (its %d the
// port): fmt.Sscanf on the part of each line from format's first word.
func bmLogged(log, format string) bool {
	head := format[:strings.Index(format, "%")]
	for _, line := range strings.Split(log, "\n") {
		i := strings.Index(line, head)
		if i < 0 {
			continue
		}
		var port int
		if _, err := fmt.Sscanf(line[i:], format, &port); err == nil {
			return true
		}
	}
	return false
}
