package integration

// Interoperability with independent client implementations run as
// separate processes: Mosquitto's mosquitto_pub/mosquitto_sub (C,
// libmosquitto) and MQTT.js (node, integration/js/peer.mjs), both at
// MQTT 3.1.1 and 5.0, crossed with the Go clients paho.mqtt.golang (3.1.1)
// and paho.golang (5.0).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// ipProc is an external client process; its stdout lines are collected.
type ipProc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	lines  chan string // closed at EOF of stdout
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
	err    error // Wait's result, once done is closed
}

// ipStart starts a program that must finish within 20 s; it is killed
// when the test ends.
func ipStart(t *testing.T, path string, args ...string) *ipProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	cmd := exec.CommandContext(ctx, path, args...)
	p := &ipProc{t: t, name: filepath.Base(path), cmd: cmd, lines: make(chan string, 1024), done: make(chan struct{})}
	cmd.Stderr = &ipLocked{mu: &p.mu, w: &p.stderr}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", path, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

type ipLocked struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *ipLocked) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

func (p *ipProc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// line returns the next stdout line satisfying ok, failing the test after
// d or when the process ends first. Lines skipped are returned too.
func (p *ipProc) line(d time.Duration, what string, ok func(string) bool) string {
	p.t.Helper()
	deadline := time.After(d)
	var seen []string
	for {
		select {
		case l, open := <-p.lines:
			if !open {
				<-p.done
				p.t.Fatalf("%s: %s ended (%v) before %s; stdout %q stderr %q", p.name, p.name, p.err, what, seen, p.stderrText())
			}
			if ok(l) {
				return l
			}
			seen = append(seen, l)
		case <-deadline:
			p.t.Fatalf("%s: no %s within %v; stdout %q stderr %q", p.name, what, d, seen, p.stderrText())
		}
	}
}

// exit waits for the process to end and returns the stdout lines not
// yet read; it fails the test unless the exit status is 0.
func (p *ipProc) exit(d time.Duration) []string {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.t.Fatalf("%s still running after %v; stderr %q", p.name, d, p.stderrText())
	}
	var rest []string
	for l := range p.lines {
		rest = append(rest, l)
	}
	if p.err != nil {
		p.t.Fatalf("%s exited with %v; stdout %q stderr %q", p.name, p.err, rest, p.stderrText())
	}
	return rest
}

// ipRun runs a program to completion and fails the test on a non-zero exit.
func ipRun(t *testing.T, path string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(path), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ipV5 is a paho.golang (MQTT 5.0) client and what it received.
type ipV5 struct {
	cm *autopaho.ConnectionManager
	in chan *paho.Publish
}

func ipV5Connect(t *testing.T, b *broker, id string) *ipV5 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), p3Wait)
	defer cancel()
	c := &ipV5{in: make(chan *paho.Publish, 1000)}
	u, _ := url.Parse("mqtt://" + b.addr)
	cm, err := autopaho.NewConnection(context.Background(), autopaho.ClientConfig{
		ServerUrls: []*url.URL{u}, KeepAlive: 30, CleanStartOnInitialConnection: true,
		ConnectRetryDelay: time.Hour,
		ClientConfig: paho.ClientConfig{ClientID: id, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { c.in <- pr.Packet; return true, nil }}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cm.AwaitConnection(ctx); err != nil {
		t.Fatalf("paho.golang connect %s: %v", id, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		cm.Disconnect(ctx)
	})
	c.cm = cm
	return c
}

func (c *ipV5) sub(t *testing.T, filter string, qos byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), p3Wait)
	defer cancel()
	sa, err := c.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if err != nil {
		t.Fatalf("subscribe %s: %v", filter, err)
	}
	if len(sa.Reasons) != 1 || sa.Reasons[0] != qos {
		t.Fatalf("subscribe %s: SUBACK %v, want [%d]", filter, sa.Reasons, qos)
	}
}

func (c *ipV5) pub(t *testing.T, p *paho.Publish) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), p3Wait)
	defer cancel()
	if _, err := c.cm.Publish(ctx, p); err != nil {
		t.Fatalf("publish %s: %v", p.Topic, err)
	}
}

func (c *ipV5) next(t *testing.T, what string) *paho.Publish {
	t.Helper()
	select {
	case p := <-c.in:
		return p
	case <-time.After(p3Wait):
		t.Fatalf("paho.golang: no message within %v: %s", p3Wait, what)
		return nil
	}
}

// ipMosqMsg is one message line of mosquitto_sub with ipMosqFormat.
type ipMosqMsg struct {
	topic, qos, retain, user, payload string
}

// ipMosqFormat makes mosquitto_sub print messages as
// MSG|topic|qos|retain|user properties|payload, apart from its -d lines.
const ipMosqFormat = "MSG|%t|%q|%r|%P|%p"

func ipParseMosq(t *testing.T, lines []string) []ipMosqMsg {
	t.Helper()
	var out []ipMosqMsg
	for _, l := range lines {
		if !strings.HasPrefix(l, "MSG|") {
			continue
		}
		f := strings.SplitN(l, "|", 6)
		if len(f) != 6 {
			t.Fatalf("mosquitto_sub line %q", l)
		}
		out = append(out, ipMosqMsg{topic: f[1], qos: f[2], retain: f[3], user: f[4], payload: f[5]})
	}
	return out
}

// ipMosqSub starts mosquitto_sub for count messages on filter and waits
// for its SUBACK.
func ipMosqSub(t *testing.T, b *broker, ver, id, filter string, qos, count int) *ipProc {
	t.Helper()
	host, port := b.hostPort()
	args := []string{"-h", host, "-p", port, "-V", ver, "-i", id,
		"-t", filter, "-q", fmt.Sprint(qos), "-C", fmt.Sprint(count), "-d", "-F", ipMosqFormat}
	path := needProgram(t, "mosquitto_sub")
	// Its -d lines go through stdio, fully buffered on a pipe: stdbuf
	// makes them line buffered, so SUBACK is seen when it arrives.
	if sb, err := exec.LookPath("stdbuf"); err == nil {
		args = append([]string{"-oL", path}, args...)
		path = sb
	}
	p := ipStart(t, path, args...)
	p.line(p3Wait, "SUBACK", func(l string) bool { return strings.Contains(l, "received SUBACK") })
	return p
}

// ipMosqPub runs mosquitto_pub with the extra arguments.
func ipMosqPub(t *testing.T, b *broker, ver, id, topic string, extra ...string) {
	t.Helper()
	host, port := b.hostPort()
	args := append([]string{"-h", host, "-p", port, "-V", ver, "-i", id, "-t", topic}, extra...)
	ipRun(t, needProgram(t, "mosquitto_pub"), args...)
}

// TestInteropMosquitto: mosquitto_pub and mosquitto_sub at 3.1.1 and 5.0
// through the broker: every QoS, retained messages, -C counts, and
// crossed with the Go clients (user properties round-trip on v5
// [MQTT-3.3.2-17]).
func TestInteropMosquitto(t *testing.T) {
	needProgram(t, "mosquitto_sub")
	needProgram(t, "mosquitto_pub")
	b := startBroker(t, "")
	for _, ver := range []string{"mqttv311", "mqttv5"} {
		t.Run(ver, func(t *testing.T) {
			pre := "mq/" + ver

			t.Run("qos 0 1 2", func(t *testing.T) {
				sub := ipMosqSub(t, b, ver, ver+"-sub", pre+"/q/#", 2, 3)
				for q := range 3 {
					ipMosqPub(t, b, ver, fmt.Sprint(ver, "-pub", q), fmt.Sprint(pre, "/q/", q), "-q", fmt.Sprint(q), "-m", fmt.Sprint("m", q))
				}
				msgs := ipParseMosq(t, sub.exit(p3Wait)) // -C 3: exits 0 after three messages
				slices.SortFunc(msgs, func(a, b ipMosqMsg) int { return strings.Compare(a.payload, b.payload) })
				if len(msgs) != 3 {
					t.Fatalf("mosquitto_sub got %v, want 3 messages", msgs)
				}
				for q, m := range msgs {
					if m.payload != fmt.Sprint("m", q) || m.qos != fmt.Sprint(q) || m.retain != "0" || m.topic != fmt.Sprint(pre, "/q/", q) {
						t.Errorf("message %d: %+v, want m%d at qos %d retain 0", q, m, q, q)
					}
				}
			})

			t.Run("min qos", func(t *testing.T) {
				// [MQTT-3.8.4-6] (v5 [MQTT-3.8.4-8]) min(published, granted).
				sub := ipMosqSub(t, b, ver, ver+"-subq1", pre+"/min", 1, 1)
				ipMosqPub(t, b, ver, ver+"-pubq2", pre+"/min", "-q", "2", "-m", "two")
				msgs := ipParseMosq(t, sub.exit(p3Wait))
				if len(msgs) != 1 || msgs[0].qos != "1" || msgs[0].payload != "two" {
					t.Fatalf("got %+v, want \"two\" at qos 1", msgs)
				}
			})

			t.Run("retained", func(t *testing.T) {
				ipMosqPub(t, b, ver, ver+"-ret", pre+"/ret", "-q", "1", "-r", "-m", "kept")
				sub := ipMosqSub(t, b, ver, ver+"-ret-sub", pre+"/ret", 2, 1)
				msgs := ipParseMosq(t, sub.exit(p3Wait))
				if len(msgs) != 1 || msgs[0].payload != "kept" || msgs[0].retain != "1" || msgs[0].qos != "1" {
					t.Fatalf("new subscriber got %+v, want \"kept\" qos 1 retain 1", msgs)
				}
				// -n: an empty retained message clears it.
				ipMosqPub(t, b, ver, ver+"-ret-clear", pre+"/ret", "-q", "1", "-r", "-n")
				sub = ipMosqSub(t, b, ver, ver+"-ret-sub2", pre+"/ret", 2, 1)
				ipMosqPub(t, b, ver, ver+"-ret-live", pre+"/ret", "-q", "1", "-m", "live")
				msgs = ipParseMosq(t, sub.exit(p3Wait))
				if len(msgs) != 1 || msgs[0].payload != "live" || msgs[0].retain != "0" {
					t.Fatalf("after clearing, new subscriber got %+v, want only \"live\" retain 0", msgs)
				}
			})

			t.Run("go client to mosquitto_sub", func(t *testing.T) {
				sub := ipMosqSub(t, b, ver, ver+"-from-go", pre+"/fromgo", 2, 2)
				if ver == "mqttv5" {
					c := ipV5Connect(t, b, "ip-go-v5-pub")
					for q := byte(1); q <= 2; q++ {
						c.pub(t, &paho.Publish{Topic: pre + "/fromgo", QoS: q, Payload: []byte(fmt.Sprint("go", q)),
							Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "origin", Value: "paho"}}}})
					}
				} else {
					c := p3Connect(t, p3Options(b, "ip-go-v4-pub"))
					c.pub(t, pre+"/fromgo", 1, false, "go1")
					c.pub(t, pre+"/fromgo", 2, false, "go2")
				}
				msgs := ipParseMosq(t, sub.exit(p3Wait))
				if len(msgs) != 2 {
					t.Fatalf("got %+v", msgs)
				}
				for i, m := range msgs {
					if m.payload != fmt.Sprint("go", i+1) || m.qos != fmt.Sprint(i+1) {
						t.Errorf("message %d: %+v", i, m)
					}
					if ver == "mqttv5" && m.user != "origin:paho" {
						t.Errorf("message %d: user properties %q, want origin:paho [MQTT-3.3.2-17]", i, m.user)
					}
				}
			})

			t.Run("mosquitto_pub to go client", func(t *testing.T) {
				if ver == "mqttv5" {
					c := ipV5Connect(t, b, "ip-go-v5-sub")
					c.sub(t, pre+"/togo", 2)
					ipMosqPub(t, b, ver, ver+"-to-go", pre+"/togo", "-q", "2", "-m", "hello",
						"-D", "publish", "user-property", "origin", "mosquitto")
					m := c.next(t, "message from mosquitto_pub")
					if string(m.Payload) != "hello" || m.QoS != 2 || m.Properties == nil ||
						m.Properties.User.Get("origin") != "mosquitto" {
						t.Fatalf("got %+v props %+v, want hello qos 2 with user property origin=mosquitto", m, m.Properties)
					}
				} else {
					c := p3Connect(t, p3Options(b, "ip-go-v4-sub"))
					c.sub(t, pre+"/togo", 2)
					ipMosqPub(t, b, ver, ver+"-to-go", pre+"/togo", "-q", "2", "-m", "hello")
					if m := c.in.next(t, p3Wait, "message from mosquitto_pub"); m.Payload != "hello" || m.QoS != 2 {
						t.Fatalf("got %v", m)
					}
				}
			})
		})
	}
}

// ipMQTTJS returns the node binary and the peer script, or skips.
func ipMQTTJS(t *testing.T) (node, script string) {
	t.Helper()
	node = needProgram(t, "node")
	if _, err := os.Stat(filepath.Join("js", "node_modules", "mqtt")); err != nil {
		if os.Getenv("NANOACTOR_REQUIRE_PEERS") == "1" {
			t.Fatalf("MQTT.js is required (NANOACTOR_REQUIRE_PEERS=1) but integration/js/node_modules is missing")
		}
		t.Skip("MQTT.js not installed: run npm ci in integration/js")
	}
	return node, filepath.Join("js", "peer.mjs")
}

// ipJSEvent is one line of peer.mjs.
type ipJSEvent struct {
	Event    string         `json:"event"`
	Topic    string         `json:"topic"`
	Payload  string         `json:"payload"`
	QoS      int            `json:"qos"`
	Retain   bool           `json:"retain"`
	User     map[string]any `json:"user"`
	Granted  []int          `json:"granted"`
	Message  string         `json:"message"`
	Reason   *int           `json:"reasonCode"`
	Present  bool           `json:"sessionPresent"`
	Original string         `json:"-"`
}

func ipJSParse(t *testing.T, l string) ipJSEvent {
	t.Helper()
	var e ipJSEvent
	if err := json.Unmarshal([]byte(l), &e); err != nil {
		t.Fatalf("peer.mjs printed %q: %v", l, err)
	}
	e.Original = l
	return e
}

func ipJSMessages(t *testing.T, lines []string) []ipJSEvent {
	t.Helper()
	var out []ipJSEvent
	for _, l := range lines {
		if e := ipJSParse(t, l); e.Event == "message" {
			out = append(out, e)
		} else if e.Event == "error" {
			t.Fatalf("peer.mjs: %s", l)
		}
	}
	return out
}

// TestInteropMQTTJS: MQTT.js 5.x at protocol levels 4 and 5 subscribes,
// publishes at QoS 1 and 2 and receives, against itself and the Go
// clients; on v5 user properties survive the broker in both directions
// [MQTT-3.3.2-17].
func TestInteropMQTTJS(t *testing.T) {
	node, script := ipMQTTJS(t)
	b := startBroker(t, "")
	_, port := b.hostPort()
	for _, ver := range []string{"4", "5"} {
		t.Run("v"+ver, func(t *testing.T) {
			pre := "js/v" + ver
			v5 := ver == "5"

			t.Run("round trip", func(t *testing.T) {
				p := ipStart(t, node, script, port, ver, "roundtrip", "js-rt-"+ver, pre+"/rt")
				msgs := ipJSMessages(t, p.exit(15*time.Second))
				slices.SortFunc(msgs, func(a, b ipJSEvent) int { return strings.Compare(a.Payload, b.Payload) })
				if len(msgs) != 2 {
					t.Fatalf("got %v", msgs)
				}
				for i, m := range msgs {
					q := i + 1
					if m.Payload != fmt.Sprint("q", q) || m.QoS != q || m.Retain || m.Topic != fmt.Sprint(pre, "/rt/q", q) {
						t.Errorf("got %s, want q%d at qos %d", m.Original, q, q)
					}
					if v5 && (m.User["peer"] != "mqttjs" || m.User["qos"] != fmt.Sprint(q)) {
						t.Errorf("user properties lost: %s", m.Original)
					}
				}
			})

			t.Run("go publishes, MQTT.js receives", func(t *testing.T) {
				p := ipStart(t, node, script, port, ver, "sub", "js-sub-"+ver, pre+"/in/#", "2", "3")
				l := p.line(10*time.Second, "subscribed", func(l string) bool { return strings.Contains(l, `"subscribed"`) })
				if e := ipJSParse(t, l); fmt.Sprint(e.Granted) != "[2]" {
					t.Fatalf("granted %v, want [2]", e.Granted)
				}
				if v5 {
					c := ipV5Connect(t, b, "ip-js-v5-pub")
					for q := byte(0); q <= 2; q++ {
						c.pub(t, &paho.Publish{Topic: fmt.Sprint(pre, "/in/", q), QoS: q, Payload: []byte(fmt.Sprint("go", q)),
							Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "from", Value: "paho.golang"}}}})
					}
				} else {
					c := p3Connect(t, p3Options(b, "ip-js-v4-pub"))
					for q := byte(0); q <= 2; q++ {
						c.pub(t, fmt.Sprint(pre, "/in/", q), q, false, fmt.Sprint("go", q))
					}
				}
				msgs := ipJSMessages(t, p.exit(10*time.Second))
				slices.SortFunc(msgs, func(a, b ipJSEvent) int { return strings.Compare(a.Payload, b.Payload) })
				if len(msgs) != 3 {
					t.Fatalf("got %v", msgs)
				}
				for q, m := range msgs {
					if m.Payload != fmt.Sprint("go", q) || m.QoS != q || m.Topic != fmt.Sprint(pre, "/in/", q) {
						t.Errorf("got %s, want go%d at qos %d", m.Original, q, q)
					}
					if v5 && m.User["from"] != "paho.golang" {
						t.Errorf("user property lost: %s", m.Original)
					}
				}
			})

			t.Run("MQTT.js publishes, go receives", func(t *testing.T) {
				if v5 {
					c := ipV5Connect(t, b, "ip-js-v5-sub")
					c.sub(t, pre+"/out/#", 2)
					for q := 1; q <= 2; q++ {
						p := ipStart(t, node, script, port, ver, "pub", fmt.Sprint("js-pub-", ver, q), fmt.Sprint(pre, "/out/", q),
							fmt.Sprint(q), fmt.Sprint("js", q), `{"from":"mqttjs"}`)
						p.exit(10 * time.Second)
						m := c.next(t, "message from MQTT.js")
						if string(m.Payload) != fmt.Sprint("js", q) || int(m.QoS) != q || m.Properties == nil ||
							m.Properties.User.Get("from") != "mqttjs" {
							t.Fatalf("got %+v props %+v, want js%d at qos %d with user property from=mqttjs", m, m.Properties, q, q)
						}
					}
				} else {
					c := p3Connect(t, p3Options(b, "ip-js-v4-sub"))
					c.sub(t, pre+"/out/#", 2)
					for q := 1; q <= 2; q++ {
						p := ipStart(t, node, script, port, ver, "pub", fmt.Sprint("js-pub-", ver, q), fmt.Sprint(pre, "/out/", q),
							fmt.Sprint(q), fmt.Sprint("js", q))
						p.exit(10 * time.Second)
						if m := c.in.next(t, p3Wait, "message from MQTT.js"); m.Payload != fmt.Sprint("js", q) || int(m.QoS) != q {
							t.Fatalf("got %v, want js%d at qos %d", m, q, q)
						}
					}
				}
			})
		})
	}
}
