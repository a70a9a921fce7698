package config

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	toml "github.com/pelletier/go-toml/v2"
)

// bridgeHead is a minimal valid [[bridge]] without its topics.
const bridgeHead = "[[bridge]]\nname = \"b\"\nurl = \"mqtt-tcp://r.example:1883\"\n"

// minBridge is a minimal valid document with one bridge and one topic.
const minBridge = bridgeHead + "[[bridge.topic]]\npattern = \"a/#\"\n"

// wantBridge returns the bridge Parse gives for name, url and topics with
// every other key left out.
func wantBridge(node, name, url string, topics ...BridgeTopic) Bridge {
	return Bridge{
		Name:              name,
		URL:               url,
		ProtoVer:          DefaultBridgeProtoVer,
		ClientID:          node + "-bridge-" + name,
		KeepAlive:         DefaultBridgeKeepAlive,
		CleanStart:        DefaultBridgeCleanStart,
		TryPrivate:        DefaultBridgeTryPrivate,
		SessionExpiry:     DefaultBridgeSessionExpiry,
		ConnectTimeout:    DefaultBridgeConnectTimeout,
		BackoffMin:        DefaultBridgeBackoffMin,
		BackoffMax:        DefaultBridgeBackoffMax,
		MaxInflight:       DefaultBridgeMaxInflight,
		OutboxMaxMessages: DefaultBridgeOutboxMaxMessages,
		OutboxMaxBytes:    DefaultBridgeOutboxMaxBytes,
		OutboxDrop:        DefaultBridgeOutboxDrop,
		Topics:            topics,
	}
}

// defaultTopic returns the rule Parse gives for pattern with every other
// key left out.
func defaultTopic(pattern string) BridgeTopic {
	return BridgeTopic{Pattern: pattern, Direction: DefaultBridgeTopicDirection,
		QoS: DefaultBridgeTopicQoS, Retain: DefaultBridgeTopicRetain}
}

func TestBridgeDefaults(t *testing.T) {
	doc := `
[node]
name = "edge-7"

[[bridge]]
name = "cloud"
url = "tls+mqtt-tcp://cloud.example"

[[bridge.topic]]
pattern = "sensors/#"

[[bridge.topic]]
pattern = "cmd/+"
direction = "in"
qos = 0
retain = false

[[bridge]]
name = "dc"
url = "mqtt-tcp://10.0.0.1"
proto_ver = 5
client_id = "fixed"
keepalive = "0s"
session_expiry = "0s"
max_inflight = 1
outbox_max_messages = 1
outbox_max_bytes = "1KiB"
outbox_drop = "newest"
topic = [{ pattern = "x", qos = 2 }, { pattern = "y", retain = false, direction = "both" }]
`
	c, err := Parse("t.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	cmd := defaultTopic("cmd/+")
	cmd.Direction, cmd.QoS, cmd.Retain = BridgeIn, 0, false
	dc := wantBridge("edge-7", "dc", "mqtt-tcp://10.0.0.1")
	dc.ProtoVer, dc.ClientID, dc.KeepAlive, dc.SessionExpiry = 5, "fixed", 0, 0
	dc.MaxInflight, dc.OutboxMaxMessages, dc.OutboxMaxBytes, dc.OutboxDrop = 1, 1, 1024, BridgeDropNewest
	x, y := defaultTopic("x"), defaultTopic("y")
	x.QoS = 2
	y.Retain, y.Direction = false, BridgeBoth
	dc.Topics = []BridgeTopic{x, y}
	want := []Bridge{
		wantBridge("edge-7", "cloud", "tls+mqtt-tcp://cloud.example", defaultTopic("sensors/#"), cmd),
		dc,
	}
	if !reflect.DeepEqual(c.Bridges, want) {
		t.Errorf("bridges:\n got  %+v\n want %+v", c.Bridges, want)
	}
}

// Written zero values stay; only absent keys are defaulted.
func TestBridgeDefaultsOnlyAbsentKeys(t *testing.T) {
	doc := bridgeHead + "clean_start = false\n[[bridge.topic]]\npattern = \"a\"\nqos = 0\nretain = false\n" +
		"[[bridge.topic]]\npattern = \"b\"\n"
	c, err := Parse("t.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	ts := c.Bridges[0].Topics
	if ts[0].QoS != 0 || ts[0].Retain || ts[1].QoS != DefaultBridgeTopicQoS || !ts[1].Retain {
		t.Errorf("topics = %+v", ts)
	}
}

func TestNoBridges(t *testing.T) {
	for _, doc := range []string{"", "bridge = []\n"} {
		c, err := Parse("t.toml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if c.Bridges != nil {
			t.Errorf("Parse(%q).Bridges = %#v, want nil", doc, c.Bridges)
		}
	}
}

func TestBridgeErrors(t *testing.T) {
	topic := "[[bridge.topic]]\npattern = \"a/#\"\n" // lines 4-5 after bridgeHead
	tls := "[[bridge]]\nname = \"b\"\nurl = \"tls+mqtt-tcp://r.example\"\n"
	for _, tc := range []errCase{
		{"name missing", "[[bridge]]\nurl = \"mqtt-tcp://r\"\n" + topic,
			[]string{`t.toml:1: bridge[0].name: must not be empty`}},
		{"name bad", "[[bridge]]\nname = \"my bridge\"\nurl = \"mqtt-tcp://r\"\n" + topic,
			[]string{`t.toml:2: bridge[0].name: may hold only letters, digits, '.', '_' and '-', got "my bridge"`}},
		{"name too long", "[[bridge]]\nname = \"" + strings.Repeat("n", 65) + "\"\nurl = \"mqtt-tcp://r\"\n" + topic,
			[]string{`t.toml:2: bridge[0].name: must be at most 64 characters, got 65`}},
		{"name duplicate", minBridge + "[[bridge]]\nname = \"b\"\nurl = \"mqtt-tcp://s\"\n" + topic,
			[]string{`t.toml:7: bridge[1].name: "b" is already the name of bridge[0]`}},
		{"url missing", "[[bridge]]\nname = \"b\"\n" + topic,
			[]string{`t.toml:1: bridge[0].url: is required, like "mqtt-tcp://broker.example.com:1883"`}},
		{"url without scheme", "[[bridge]]\nname = \"b\"\nurl = \"r.example:1883\"\n" + topic,
			[]string{`t.toml:3: bridge[0].url: must be scheme://host[:port] with scheme mqtt-tcp, tls+mqtt-tcp, mqtt-quic, got "r.example:1883"`}},
		{"url unknown scheme", "[[bridge]]\nname = \"b\"\nurl = \"mqtts://r.example\"\n" + topic,
			[]string{`t.toml:3: bridge[0].url: scheme must be one of mqtt-tcp, tls+mqtt-tcp, mqtt-quic; got "mqtts"`}},
		{"url no host", "[[bridge]]\nname = \"b\"\nurl = \"mqtt-tcp://:1883\"\n" + topic,
			[]string{`t.toml:3: bridge[0].url: has no host, got "mqtt-tcp://:1883"`}},
		{"url bad port", "[[bridge]]\nname = \"b\"\nurl = \"mqtt-tcp://r:70000\"\n" + topic,
			[]string{`t.toml:3: bridge[0].url: port must be a number from 1 to 65535, got "70000"`}},
		{"url port 0", "[[bridge]]\nname = \"b\"\nurl = \"mqtt-tcp://r:0\"\n" + topic,
			[]string{`t.toml:3: bridge[0].url: port must be a number from 1 to 65535, got "0"`}},
		{"url with path", "[[bridge]]\nname = \"b\"\nurl = \"mqtt-tcp://r:1883/mqtt\"\n" + topic,
			[]string{`t.toml:3: bridge[0].url: must be mqtt-tcp://host[:port] with nothing after the port, got "mqtt-tcp://r:1883/mqtt"`}},
		{"url with user", "[[bridge]]\nname = \"b\"\nurl = \"mqtt-tcp://u:p@r\"\n" + topic,
			[]string{`t.toml:3: bridge[0].url: must be mqtt-tcp://host[:port] with nothing after the port`}},
		{"url bad host", "[[bridge]]\nname = \"b\"\nurl = \"mqtt-tcp://bad_host\"\n" + topic,
			[]string{`t.toml:3: bridge[0].url: host must be an IP address or a host name, got "bad_host"`}},
		{"proto_ver", bridgeHead + "proto_ver = 3\n" + topic,
			[]string{`t.toml:4: bridge[0].proto_ver: must be 4 (MQTT 3.1.1) or 5, got 3`}},
		{"keepalive range", bridgeHead + "keepalive = \"65536s\"\n" + topic,
			[]string{`t.toml:4: bridge[0].keepalive: must be between 0s and 18h12m15s, got 18h12m16s`}},
		{"keepalive negative", bridgeHead + "keepalive = \"-1s\"\n" + topic,
			[]string{`t.toml:4: bridge[0].keepalive: must be between 0s and 18h12m15s, got -1s`}},
		{"keepalive fraction", bridgeHead + "keepalive = \"1.5s\"\n" + topic,
			[]string{`t.toml:4: bridge[0].keepalive: must be whole seconds, got 1.5s`}},
		{"session_expiry range", bridgeHead + "session_expiry = \"4294967296s\"\n" + topic,
			[]string{`t.toml:4: bridge[0].session_expiry: must be between 0s and 1193046h28m15s, got 1193046h28m16s`}},
		{"session_expiry fraction", bridgeHead + "session_expiry = \"10ms\"\n" + topic,
			[]string{`t.toml:4: bridge[0].session_expiry: must be whole seconds, got 10ms`}},
		{"connect_timeout zero", bridgeHead + "connect_timeout = \"0s\"\n" + topic,
			[]string{`t.toml:4: bridge[0].connect_timeout: must be between 1ms and 5m0s, got 0s`}},
		{"connect_timeout long", bridgeHead + "connect_timeout = \"6m\"\n" + topic,
			[]string{`t.toml:4: bridge[0].connect_timeout: must be between 1ms and 5m0s, got 6m0s`}},
		{"backoff_min zero", bridgeHead + "backoff_min = \"0s\"\n" + topic,
			[]string{`t.toml:4: bridge[0].backoff_min: must be between 1ms and 1h0m0s, got 0s`}},
		{"backoff_max long", bridgeHead + "backoff_max = \"2h\"\n" + topic,
			[]string{`t.toml:4: bridge[0].backoff_max: must be between 1ms and 1h0m0s, got 2h0m0s`}},
		{"backoff_max below min", bridgeHead + "backoff_min = \"1m\"\n" + topic,
			// backoff_max is not written: located by backoff_min.
			[]string{`t.toml:4: bridge[0].backoff_max: must be at least backoff_min (1m0s), got 30s`}},
		{"max_inflight", bridgeHead + "max_inflight = 0\n" + topic,
			[]string{`t.toml:4: bridge[0].max_inflight: must be between 1 and 65535, got 0`}},
		{"max_inflight high", bridgeHead + "max_inflight = 65536\n" + topic,
			[]string{`t.toml:4: bridge[0].max_inflight: must be between 1 and 65535, got 65536`}},
		{"outbox_max_messages", bridgeHead + "outbox_max_messages = 0\n" + topic,
			[]string{`t.toml:4: bridge[0].outbox_max_messages: must be at least 1, got 0`}},
		{"outbox_max_bytes", bridgeHead + "outbox_max_bytes = 1023\n" + topic,
			[]string{`t.toml:4: bridge[0].outbox_max_bytes: must be at least 1024 (1KiB), got 1023`}},
		{"outbox_drop", bridgeHead + "outbox_drop = \"random\"\n" + topic,
			[]string{`t.toml:4: bridge[0].outbox_drop: must be one of oldest, newest; got "random"`}},
		{"client_id empty", bridgeHead + "client_id = \"\"\n" + topic,
			[]string{`t.toml:4: bridge[0].client_id: must not be empty`}},
		{"client_id long", bridgeHead + "client_id = \"" + strings.Repeat("c", 65536) + "\"\n" + topic,
			[]string{`t.toml:4: bridge[0].client_id: must be at most 65535 bytes, got 65536`}},
		{"same url and client id", minBridge +
			"[[bridge]]\nname = \"b2\"\nurl = \"mqtt-tcp://R.example\"\nclient_id = \"nanoactor-bridge-b\"\n" + topic,
			// The default port and the host's case do not hide the clash.
			[]string{`t.toml:9: bridge[1].client_id: "nanoactor-bridge-b" is also the client id of bridge[0] to the same broker (mqtt-tcp://r.example:1883): each would take over the other's session`}},
		{"same url, default client ids differ", minBridge + "[[bridge]]\nname = \"b2\"\nurl = \"mqtt-tcp://r.example:1883\"\n" + topic,
			nil},
		{"tls keys on mqtt-tcp", bridgeHead + "[bridge.tls]\nca_file = \"ca\"\nserver_name = \"x\"\ninsecure_skip_verify = true\n" + topic,
			[]string{
				`t.toml:5: bridge[0].tls.ca_file: is only for tls+mqtt-tcp and mqtt-quic bridges, not mqtt-tcp`,
				`t.toml:6: bridge[0].tls.server_name: is only for tls+mqtt-tcp and mqtt-quic bridges, not mqtt-tcp`,
				`t.toml:7: bridge[0].tls.insecure_skip_verify: is only for tls+mqtt-tcp and mqtt-quic bridges, not mqtt-tcp`,
			}},
		{"tls cert without key", tls + "[bridge.tls]\ncert_file = \"c\"\n" + topic,
			// key_file is not written: located by cert_file.
			[]string{`t.toml:5: bridge[0].tls.key_file: is required with tls.cert_file: write both or neither`}},
		{"tls key without cert", tls + "tls.key_file = \"k\"\n" + topic,
			[]string{`t.toml:4: bridge[0].tls.cert_file: is required with tls.key_file: write both or neither`}},
		{"no topics", bridgeHead,
			[]string{`t.toml:1: bridge[0].topic: at least one [[bridge.topic]] is required`}},
		{"empty topic array", bridgeHead + "topic = []\n",
			[]string{`t.toml:4: bridge[0].topic: at least one [[bridge.topic]] is required`}},
		{"pattern missing", bridgeHead + "[[bridge.topic]]\nqos = 1\n",
			[]string{`t.toml:4: bridge[0].topic[0].pattern: is required: a topic filter like "sensors/#"`}},
		{"pattern invalid", bridgeHead + "[[bridge.topic]]\npattern = \"a/#/b\"\n",
			[]string{`t.toml:5: bridge[0].topic[0].pattern: is not a valid topic filter ('#' is not alone in the last level): "a/#/b"`}},
		{"pattern plus", bridgeHead + "[[bridge.topic]]\npattern = \"a+\"\n",
			[]string{`t.toml:5: bridge[0].topic[0].pattern: is not a valid topic filter ('+' is not alone in its level): "a+"`}},
		{"pattern shared", bridgeHead + "[[bridge.topic]]\npattern = \"$share/g/a\"\n",
			[]string{`t.toml:5: bridge[0].topic[0].pattern: must not be a shared subscription ($share/...), got "$share/g/a"`}},
		{"pattern shared malformed", bridgeHead + "[[bridge.topic]]\npattern = \"$share/g\"\n",
			[]string{`t.toml:5: bridge[0].topic[0].pattern: must not be a shared subscription ($share/...), got "$share/g"`}},
		{"direction", bridgeHead + topic + "direction = \"up\"\n",
			[]string{`t.toml:6: bridge[0].topic[0].direction: must be one of out, in, both; got "up"`}},
		{"qos", bridgeHead + topic + "qos = 3\n",
			[]string{`t.toml:6: bridge[0].topic[0].qos: must be between 0 and 2, got 3`}},
		{"qos negative", bridgeHead + topic + "qos = -1\n",
			[]string{`t.toml:6: bridge[0].topic[0].qos: must be between 0 and 2, got -1`}},
		{"prefix wildcard", bridgeHead + topic + "local_prefix = \"site/+/\"\n",
			[]string{`t.toml:6: bridge[0].topic[0].local_prefix: must be empty or a topic name without wildcards (contains wildcard '+' or '#'), got "site/+/"`}},
		{"prefix makes bad filter", bridgeHead + "[[bridge.topic]]\npattern = \"#\"\nremote_prefix = \"site\"\n",
			[]string{`t.toml:6: bridge[0].topic[0].remote_prefix: with the pattern gives an invalid topic filter ('#' is not alone in the last level): "site#"`}},
		{"prefix makes shared filter", bridgeHead + topic + "remote_prefix = \"$share/g/\"\n",
			[]string{`t.toml:6: bridge[0].topic[0].remote_prefix: must not make a shared subscription ($share/...) of the pattern, got "$share/g/a/#"`}},
		{"wrong type in nested topic", bridgeHead + topic + "[[bridge.topic]]\npattern = \"b\"\nqos = \"high\"\n",
			[]string{`t.toml:8: bridge[0].topic[1].qos: must be an integer, got "high"`}},
		{"bare number duration", bridgeHead + "keepalive = 60\n" + topic,
			[]string{`t.toml:4: bridge[0].keepalive: must be a duration string like "10s", got 60`}},
		{"unknown key in tls", "[[bridge]]\nname = \"b\"\nurl = \"mqtt-quic://r\"\n[bridge.tls]\nca_fil = \"x\"\n" + topic,
			[]string{`t.toml:5: bridge[0].tls.ca_fil: unknown key (did you mean "ca_file"?)`}},
		{"unknown key in topic", bridgeHead + topic + "[[bridge.topic]]\npatern = \"b\"\n",
			[]string{
				`t.toml:6: bridge[0].topic[1].pattern: is required`,
				`t.toml:7: bridge[0].topic[1].patern: unknown key (did you mean "pattern"?)`,
			}},
		{"table instead of array of tables", "[bridge]\nname = \"b\"\n",
			[]string{`t.toml:1: bridge: is an array of tables: write [[bridge]]`}},
		{"topic table instead of array", bridgeHead + "[bridge.topic]\npattern = \"a\"\n",
			[]string{`t.toml:4: bridge[0].topic: is an array of tables: write [[bridge.topic]]`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("t.toml", []byte(tc.doc))
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c.Bridges)
			}
			got := strings.Split(err.Error(), "\n")
			for _, w := range tc.want {
				if !containsPrefix(got, w) {
					t.Errorf("missing %q in:\n%s", w, err)
				}
			}
			// Nothing else is reported.
			for _, g := range got {
				found := false
				for _, w := range tc.want {
					found = found || strings.HasPrefix(g, w)
				}
				if !found {
					t.Errorf("unexpected %q", g)
				}
			}
		})
	}
}

// Errors in the topics of several bridges carry the line and index of
// their own table: the topic index restarts with each [[bridge]].
func TestBridgeNestedTopicLines(t *testing.T) {
	doc := `[[bridge]]
name = "a"
url = "mqtt-tcp://a.example"
[[bridge.topic]]
pattern = "x"
[[bridge.topic]]
pattern = "y"
qos = 5

[[bridge]]
name = "b"
url = "mqtt-quic://b.example"
[bridge.tls]
cert_file = "c.pem"
[[bridge.topic]]
pattern = "z"
direction = "sideways"
[[bridge.topic]]
pattern = "w"
[[bridge.topic]]
pattern = "v/#/"
`
	_, err := Parse("t.toml", []byte(doc))
	want := []string{
		`t.toml:8: bridge[0].topic[1].qos: must be between 0 and 2, got 5`,
		`t.toml:14: bridge[1].tls.key_file: is required with tls.cert_file: write both or neither`,
		`t.toml:17: bridge[1].topic[0].direction: must be one of out, in, both; got "sideways"`,
		`t.toml:21: bridge[1].topic[2].pattern: is not a valid topic filter ('#' is not alone in the last level): "v/#/"`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("errors:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestBridgeIndexPaths(t *testing.T) {
	doc := "[[bridge]]\n[bridge.tls]\nca_file = \"x\"\n[[bridge.topic]]\nqos = 0\n[[bridge.topic]]\nqos = 1\n" +
		"[[bridge]]\ntopic = [{ qos = 2 }, { retain = true }]\n[[bridge.topic]]\nqos = 0\n"
	ix, serr := buildIndex([]byte(doc))
	if serr != nil {
		t.Fatal(serr.msg)
	}
	for path, line := range map[string]int{
		"bridge[0]": 1, "bridge[0].tls": 2, "bridge[0].tls.ca_file": 3,
		"bridge[0].topic[0]": 4, "bridge[0].topic[0].qos": 5, "bridge[0].topic[1].qos": 7,
		"bridge[1]": 8, "bridge[1].topic": 9, "bridge[1].topic[0].qos": 9, "bridge[1].topic[1].retain": 9,
	} {
		if got := ix.lines[path]; got != line {
			t.Errorf("line of %s = %d, want %d", path, got, line)
		}
	}
	// go-toml rejects extending an inline array with [[bridge.topic]]; the
	// index need only not crash on it.
	if _, err := Parse("t.toml", []byte(doc)); err == nil {
		t.Error("Parse accepted a [[bridge.topic]] after an inline topic array")
	}
}

func TestBridgeEndpoint(t *testing.T) {
	for _, tc := range []struct{ url, scheme, hostport string }{
		{"mqtt-tcp://r.example", BridgeSchemeTCP, "r.example:1883"},
		{"tls+mqtt-tcp://r.example", BridgeSchemeTLS, "r.example:8883"},
		{"mqtt-quic://r.example", BridgeSchemeQUIC, "r.example:14567"},
		{"mqtt-tcp://r.example:2883", BridgeSchemeTCP, "r.example:2883"},
		{"MQTT-QUIC://R.Example:443", BridgeSchemeQUIC, "r.example:443"},
		{"mqtt-tcp://10.1.2.3", BridgeSchemeTCP, "10.1.2.3:1883"},
		{"tls+mqtt-tcp://[::1]", BridgeSchemeTLS, "[::1]:8883"},
		{"mqtt-quic://[fe80::1]:9000", BridgeSchemeQUIC, "[fe80::1]:9000"},
	} {
		b := Bridge{Name: "b", URL: tc.url}
		scheme, hostport, err := b.Endpoint()
		if err != nil || scheme != tc.scheme || hostport != tc.hostport {
			t.Errorf("Endpoint(%q) = %q, %q, %v; want %q, %q", tc.url, scheme, hostport, err, tc.scheme, tc.hostport)
		}
		if got, want := b.UsesTLS(), tc.scheme != BridgeSchemeTCP; got != want {
			t.Errorf("UsesTLS(%q) = %v", tc.url, got)
		}
	}
	for _, url := range []string{"", "r:1883", "http://r", "mqtt-tcp://", "mqtt-tcp://r:", "mqtt-tcp://r/x", "mqtt-tcp://r?x", "mqtt-tcp:r"} {
		b := Bridge{Name: "b", URL: url}
		if s, h, err := b.Endpoint(); err == nil || s != "" || h != "" {
			t.Errorf("Endpoint(%q) = %q, %q, %v; want an error", url, s, h, err)
		} else if !strings.HasPrefix(err.Error(), `bridge "b": url `) {
			t.Errorf("Endpoint(%q) error = %q", url, err)
		}
		if b.UsesTLS() {
			t.Errorf("UsesTLS(%q) on a bad url", url)
		}
	}
}

func TestBridgeTopicFilters(t *testing.T) {
	r := BridgeTopic{Pattern: "a/#", LocalPrefix: "here/", RemotePrefix: "there/"}
	if r.LocalFilter() != "here/a/#" || r.RemoteFilter() != "there/a/#" {
		t.Errorf("filters = %q %q", r.LocalFilter(), r.RemoteFilter())
	}
}

func TestBridgeCloneIndependent(t *testing.T) {
	c, err := Parse("t.toml", []byte(minBridge))
	if err != nil {
		t.Fatal(err)
	}
	d := c.clone()
	if !reflect.DeepEqual(c, d) {
		t.Fatal("clone differs")
	}
	d.Bridges[0].Name = "changed"
	d.Bridges[0].Topics[0].Pattern = "changed"
	d.Bridges[0].Topics = append(d.Bridges[0].Topics, BridgeTopic{})
	d.Bridges = append(d.Bridges, Bridge{})
	if c.Bridges[0].Name != "b" || c.Bridges[0].Topics[0].Pattern != "a/#" || len(c.Bridges[0].Topics) != 1 || len(c.Bridges) != 1 {
		t.Errorf("changing the clone changed the original: %+v", c.Bridges)
	}
	if Default().Bridges != nil {
		t.Error("Default() has bridges")
	}
}

func TestValidateGoBridge(t *testing.T) {
	c := Default()
	c.Bridges = []Bridge{wantBridge(c.Node.Name, "b", "mqtt-tcp://r", defaultTopic("a"))}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Bridges[0].Topics[0].QoS = 3
	if err, want := c.Validate(), "bridge[0].topic[0].qos: must be between 0 and 2, got 3"; err == nil || err.Error() != want {
		t.Errorf("Validate() = %v, want %s", err, want)
	}
}

// exampleBridge returns the commented-out [[bridge]] example of
// default.toml with its [table] and key lines uncommented, as a user
// enabling it would; its comment lines stay comments. It also returns the
// line of default.toml the example starts on.
func exampleBridge(t *testing.T) (doc string, first int) {
	t.Helper()
	var b strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(DefaultFile()))
	n, in := 0, false
	for sc.Scan() {
		n++
		l := sc.Text()
		if l == "# [[bridge]]" && !in {
			in, first = true, n
		}
		if !in {
			continue
		}
		if !strings.HasPrefix(l, "#") {
			break // the blank line that ends the block
		}
		if h := strings.TrimPrefix(l, "# "); isKeyLine(l) || strings.HasPrefix(h, "[") {
			l = h
		}
		b.WriteString(l + "\n")
	}
	if first == 0 {
		t.Fatal("default.toml has no \"# [[bridge]]\" example")
	}
	return b.String(), first
}

// The [[bridge]] example of default.toml, uncommented, parses, and each
// key it writes is at its documented default: the example parses to the
// same Config as its required keys alone.
func TestDefaultFileBridgeExample(t *testing.T) {
	doc, _ := exampleBridge(t)
	c, err := Parse("example.toml", []byte(doc))
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	commands := BridgeTopic{Pattern: "commands/+/set", Direction: BridgeIn, QoS: 2,
		LocalPrefix: "cloud/", RemotePrefix: "site-1/", Retain: DefaultBridgeTopicRetain}
	want := []Bridge{wantBridge(DefaultNodeName, "cloud", "tls+mqtt-tcp://broker.example.com:8883",
		defaultTopic("sensors/#"), commands)}
	if !reflect.DeepEqual(c.Bridges, want) {
		t.Errorf("example bridge:\n got  %+v\n want %+v", c.Bridges, want)
	}
	// Apart from the bridge, the example changes nothing.
	c.Bridges = nil
	if !reflect.DeepEqual(c, Default()) {
		t.Error("the example changes more than the bridges")
	}
	// Uncommenting it in place gives a valid file too.
	full := strings.Replace(string(DefaultFile()), commentOut(doc), doc, 1)
	if full == string(DefaultFile()) {
		t.Fatal("could not uncomment the example in place")
	}
	if c, err := Parse("default.toml", []byte(full)); err != nil || len(c.Bridges) != 1 {
		t.Errorf("default.toml with the example uncommented: %v", err)
	}
}

// commentOut undoes exampleBridge's uncommenting.
func commentOut(doc string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(doc, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			l = "# " + l
		}
		b.WriteString(l)
	}
	return b.String()
}

func TestLoadChecksBridgeFiles(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	doc := minBridge + // a mqtt-tcp bridge: no files checked
		"[[bridge]]\nname = \"q\"\nurl = \"mqtt-quic://r.example\"\n" +
		"[bridge.tls]\nca_file = \"" + ca + "\"\ncert_file = \"" + cert + "\"\nkey_file = \"" + key + "\"\n" +
		"[[bridge.topic]]\npattern = \"a\"\n"
	path := filepath.Join(dir, "nanoactor.toml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + `:11: bridge[1].tls.cert_file: cannot read "` + cert + `": no such file or directory` + "\n" +
		path + `:12: bridge[1].tls.key_file: cannot read "` + key + `": no such file or directory`
	if err == nil || err.Error() != want {
		t.Errorf("Load = %v, want\n%s", err, want)
	}
	if _, err := Parse(path, []byte(doc)); err != nil {
		t.Errorf("Parse = %v", err)
	}
}

// A Config with bridges marshaled with go-toml parses back to itself.
func TestBridgeMarshalRoundTrip(t *testing.T) {
	c, err := Parse("t.toml", []byte(minBridge+"[[bridge.topic]]\npattern = \"b\"\nqos = 0\nretain = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.Bridges[0].BackoffMin = Duration(250 * time.Millisecond)
	b, err := toml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("marshaled.toml", b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip:\n got  %+v\n want %+v", back, c)
	}
}
