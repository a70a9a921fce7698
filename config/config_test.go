package config

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	toml "github.com/pelletier/go-toml/v2"
)

func TestDefaultFileParsesAndValidates(t *testing.T) {
	c, err := Parse("default.toml", DefaultFile())
	if err != nil {
		t.Fatalf("embedded default.toml: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate(default): %v", err)
	}
	_ = Default() // must not panic
}

func TestEmptyFileEqualsDefaultFile(t *testing.T) {
	for _, empty := range []string{"", "\n", "# only a comment\n", "\xef\xbb\xbf"} {
		c, err := Parse("empty.toml", []byte(empty))
		if err != nil {
			t.Fatalf("Parse(%q): %v", empty, err)
		}
		if d := Default(); !reflect.DeepEqual(c, d) {
			t.Errorf("Parse(%q) differs from default.toml:\n got  %+v\n want %+v", empty, c, d)
		}
	}
}

func TestDefaultServesTCPOnLoopback(t *testing.T) {
	want := []Listener{{Name: DefaultListenerName, Protocol: ProtocolTCP, Bind: "127.0.0.1:1883"}}
	if got := Default().Listeners; !reflect.DeepEqual(got, want) {
		t.Fatalf("default listeners = %+v, want %+v", got, want)
	}
}

func TestDefaultReturnsIndependentCopies(t *testing.T) {
	a := Default()
	a.Listeners[0].Bind = "0.0.0.0:1"
	a.MQTT.MaxInflight = 1
	if b := Default(); b.Listeners[0].Bind != DefaultListenerBind || b.MQTT.MaxInflight != DefaultMaxInflight {
		t.Fatal("changing one Default() changed the next")
	}
	f := DefaultFile()
	f[0] = 'X'
	if DefaultFile()[0] == 'X' {
		t.Fatal("changing DefaultFile() changed the embedded file")
	}
}

// Every key of the schema is written in default.toml (TLS and WebSocket
// listener keys and the [[bridge]] example as comments) with a comment line
// above it or above its group. A commented-out header ("# [[bridge]]")
// opens a section like a written one.
func TestDefaultFileDocumentsEveryKey(t *testing.T) {
	lines := map[string]int{} // "section.key" -> line
	var text []string
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(DefaultFile()))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		text = append(text, l)
		h := strings.TrimPrefix(l, "# ")
		switch {
		case strings.HasPrefix(h, "[[") && strings.HasSuffix(h, "]]"):
			section = strings.Trim(h, "[]")
		case strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]"):
			section = strings.Trim(h, "[]")
		default:
			if isKeyLine(l) {
				k, _, _ := strings.Cut(strings.TrimPrefix(l, "# "), " = ")
				if _, seen := lines[section+"."+k]; !seen {
					lines[section+"."+k] = len(text)
				}
			}
		}
	}
	for _, key := range schemaKeys(configType, "") {
		n, ok := lines[key]
		if !ok {
			t.Errorf("default.toml does not write %s", key)
			continue
		}
		documented := false
		for i := n - 2; i >= 0 && i >= n-6; i-- {
			if strings.HasPrefix(text[i], "#") && !isKeyLine(text[i]) {
				documented = true
				break
			}
		}
		if !documented {
			t.Errorf("default.toml: %s (line %d) has no comment above it", key, n)
		}
	}
}

// isKeyLine reports whether l writes a key, maybe commented out:
// "key = value" or "# key = value".
func isKeyLine(l string) bool {
	k, _, ok := strings.Cut(strings.TrimPrefix(l, "# "), " = ")
	return ok && k != "" && strings.Trim(k, "abcdefghijklmnopqrstuvwxyz0123456789_") == ""
}

// schemaKeys lists "section.key" for every leaf key of the struct type t.
func schemaKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		name := tagName(f)
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct {
			keys = append(keys, schemaKeys(ft, joinPath(prefix, name))...)
			continue
		}
		keys = append(keys, joinPath(prefix, name))
	}
	return keys
}

// errCase is a document and the problems Parse must report: each want
// entry is the start of one error line ("file:line: key: ") followed by a
// part of its message.
type errCase struct {
	name string
	doc  string
	want []string
}

var errCases = []errCase{
	{"unknown top-level key", "colour = 1\n",
		[]string{`t.toml:1: colour: unknown key`}},
	{"unknown table", "[node]\nname = \"a\"\n\n[mqt]\nx = 1\n",
		[]string{`t.toml:4: mqt: unknown table (did you mean "mqtt"?)`}},
	{"unknown nested key", "[mqtt]\nmax_inflight = 5\nmax_pakcet_size = 5\n",
		[]string{`t.toml:3: mqtt.max_pakcet_size: unknown key (did you mean "max_packet_size"?)`}},
	{"unknown dotted key", "mqtt.nope = 1\n",
		[]string{`t.toml:1: mqtt.nope: unknown key`}},
	{"unknown key in second listener", "[[listener]]\nbind = \"127.0.0.1:1\"\n\n[[listener]]\nbind = \"127.0.0.1:2\"\ncolour = \"red\"\n",
		[]string{`t.toml:6: listener[1].colour: unknown key`}},
	{"wrong type", "[mqtt]\nreceive_maximum = \"lots\"\n",
		[]string{`t.toml:2: mqtt.receive_maximum: must be an integer, got "lots"`}},
	{"wrong type bool", "[mqtt]\nretain_available = 1\n",
		[]string{`t.toml:2: mqtt.retain_available: must be true or false, got 1`}},
	{"wrong type in second listener", "[[listener]]\nbind = \"127.0.0.1:1\"\n[[listener]]\nbind = \"127.0.0.1:2\"\nmax_connections = \"10\"\n",
		[]string{`t.toml:5: listener[1].max_connections: must be an integer, got "10"`}},
	{"wrong type tcp_nodelay", "[[listener]]\nbind = \"127.0.0.1:1\"\ntcp_nodelay = \"no\"\n",
		[]string{`t.toml:3: listener[0].tcp_nodelay: must be true or false, got "no"`}},
	{"wrong type in inline table", "mqtt = { connect_timeout = 5 }\n",
		[]string{`t.toml:1: mqtt.connect_timeout: must be a duration string like "10s", got 5`}},
	{"out of range", "\n[mqtt]\nmax_packet_size = 0\n",
		[]string{`t.toml:3: mqtt.max_packet_size: must be between 16 and 268435455, got 0`}},
	{"out of range receive maximum", "[mqtt]\nreceive_maximum = 70000\n",
		[]string{`t.toml:2: mqtt.receive_maximum: must be between 1 and 65535, got 70000`}},
	{"client id length below the spec minimum", "[mqtt]\nmax_client_id_len = 8\n",
		[]string{`t.toml:2: mqtt.max_client_id_len: must be between 23 and 65535, got 8`}},
	{"bad duration", "[mqtt]\nconnect_timeout = \"10 seconds\"\n",
		[]string{`t.toml:2: mqtt.connect_timeout: invalid duration "10 seconds"`}},
	{"bare number duration", "[mqtt]\nwrite_timeout = 10\n",
		[]string{`t.toml:2: mqtt.write_timeout: must be a duration string like "10s", got 10`}},
	{"negative duration", "[mqtt]\nconnect_timeout = \"-1s\"\n",
		[]string{`t.toml:2: mqtt.connect_timeout: must be between 1ms and 1h0m0s, got -1s`}},
	{"decimal size unit", "[mqtt]\nmax_queued_bytes = \"16MB\"\n",
		[]string{`t.toml:2: mqtt.max_queued_bytes: invalid size "16MB"`}},
	{"size of wrong type", "[mqtt]\nmax_outbound_bytes = 1.5\n",
		[]string{`t.toml:2: mqtt.max_outbound_bytes: must be a number of bytes, like 1048576 or "1MiB", got 1.5`}},
	{"bad enum", "[log]\nlevel = \"verbose\"\n",
		[]string{`t.toml:2: log.level: must be one of debug, info, warn, error; got "verbose"`}},
	{"bad policy", "[mqtt]\nslow_client_policy = \"block\"\n",
		[]string{`t.toml:2: mqtt.slow_client_policy: must be one of drop_qos0, disconnect; got "block"`}},
	{"bad node name", "[node]\nname = \"my node\"\n",
		[]string{`t.toml:2: node.name: may hold only letters`}},
	{"unknown protocol", "[[listener]]\nprotocol = \"smtp\"\nbind = \"127.0.0.1:25\"\n",
		[]string{`t.toml:2: listener[0].protocol: must be one of tcp, tls, ws, wss, quic; got "smtp"`}},
	{"missing cert for tls", "[[listener]]\nbind = \"127.0.0.1:1883\"\n\n[[listener]]\nprotocol = \"tls\"\nbind = \"127.0.0.1:8883\"\n",
		[]string{
			`t.toml:5: listener[1].cert_file: is required for a "tls" listener`,
			`t.toml:5: listener[1].key_file: is required for a "tls" listener`,
		}},
	{"tls key on tcp listener", "[[listener]]\nbind = \"127.0.0.1:1883\"\ncert_file = \"c.pem\"\n",
		[]string{`t.toml:3: listener[0].cert_file: is only used by tls, wss and quic listeners, not "tcp"`}},
	{"path on tcp listener", "[[listener]]\nbind = \"127.0.0.1:1883\"\npath = \"/mqtt\"\n",
		[]string{`t.toml:3: listener[0].path: is only used by ws and wss listeners, not "tcp"`}},
	{"no bind", "[[listener]]\nname = \"a\"\n",
		[]string{`t.toml:1: listener[0].bind: is required`}},
	{"bind without port", "[[listener]]\nbind = \"localhost\"\n",
		[]string{`t.toml:2: listener[0].bind: must be host:port`}},
	{"bind port out of range", "[[listener]]\nbind = \"127.0.0.1:65536\"\n",
		[]string{`t.toml:2: listener[0].bind: port must be a number from 0 to 65535, got "65536"`}},
	{"bind bad host", "[[listener]]\nbind = \"bad_host!:1883\"\n",
		[]string{`t.toml:2: listener[0].bind: host must be an IP address or a host name`}},
	{"duplicate bind", "[[listener]]\nbind = \"127.0.0.1:1883\"\n[[listener]]\nbind = \"127.0.0.1:1883\"\n",
		[]string{`t.toml:4: listener[1].bind: "127.0.0.1:1883" is already used by listener[0] ("127.0.0.1:1883")`}},
	{"bind conflicts with wildcard", "[[listener]]\nbind = \":1883\"\n[[listener]]\nname = \"b\"\nbind = \"127.0.0.1:1883\"\n",
		[]string{`t.toml:5: listener[1].bind: "127.0.0.1:1883" is already used by listener[0] (":1883")`}},
	{"duplicate name", "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:1\"\n[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:2\"\n",
		[]string{`t.toml:5: listener[1].name: "a" is already the name of listener[0]`}},
	{"no listeners", "listener = []\n",
		[]string{`t.toml:1: listener: at least one [[listener]] is required`}},
	{"table instead of array of tables", "[listener]\nbind = \"127.0.0.1:1\"\n",
		[]string{`t.toml:1: listener: is an array of tables: write [[listener]]`}},
	{"array of tables instead of table", "[[mqtt]]\nmax_inflight = 1\n",
		[]string{`t.toml:1: mqtt: is a table: write [mqtt], not [[mqtt]]`}},
	{"connect limit above packet limit", "[mqtt]\nmax_packet_size = 4096\n",
		[]string{`t.toml:2: mqtt.connect_packet_max: must not exceed mqtt.max_packet_size (4096), got 65536`}},
	{"keepalive default above max", "[mqtt]\nkeepalive_max = 60\nkeepalive_default = 120\n",
		[]string{`t.toml:3: mqtt.keepalive_default: must not exceed mqtt.keepalive_max (60), got 120`}},
	{"outbound below packet size", "[mqtt]\nmax_packet_size = \"8MiB\"\n",
		[]string{
			`t.toml:2: mqtt.max_queued_bytes:`, // 16 MiB is enough; must not be reported
			`t.toml:2: mqtt.max_outbound_bytes: must be at least mqtt.max_packet_size (8388608) so that any packet can be sent, got 4194304`,
		}},
	{"key written twice", "[log]\nlevel = \"info\"\nlevel = \"debug\"\n",
		[]string{`t.toml:3: log.level: is written twice; first on line 2`}},
	{"table written twice", "[log]\nlevel = \"info\"\n[log]\nformat = \"json\"\n",
		[]string{`t.toml:3: log: is written twice; first on line 1`}},
	{"syntax error", "[mqtt]\nmax_inflight = \n",
		[]string{`t.toml:2: invalid TOML at column 16:`}},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("t.toml", []byte(tc.doc))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", c)
			}
			if c != nil {
				t.Errorf("Parse returned a Config with an error")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("error %T is not Errors: %v", err, err)
			}
			got := strings.Split(err.Error(), "\n")
			for _, w := range tc.want {
				if w == `t.toml:2: mqtt.max_queued_bytes:` {
					if containsPrefix(got, w) {
						t.Errorf("unexpected error %q in:\n%s", w, err)
					}
					continue
				}
				if !containsPrefix(got, w) {
					t.Errorf("missing %q in:\n%s", w, err)
				}
			}
		})
	}
}

func containsPrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func TestParseReportsAllErrors(t *testing.T) {
	doc := `bogus = 1
[mqtt]
max_packet_size = 0
connect_timeout = "10x"
receive_maximum = "lots"
maximum_qos = 3
write_timeout = 5

[[listener]]
bind = "127.0.0.1:1883"

[[listener]]
protocol = "tls"
bind = "127.0.0.1:1883"
typo = true

[log]
format = "xml"
`
	_, err := Parse("nanoactor.toml", []byte(doc))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %T: %v", err, err)
	}
	want := []string{
		"nanoactor.toml:1: bogus: unknown key",
		"nanoactor.toml:3: mqtt.max_packet_size: must be between 16 and 268435455, got 0",
		`nanoactor.toml:4: mqtt.connect_timeout: invalid duration "10x": write a number with a unit, like "10s", "1m30s" or "24h"`,
		`nanoactor.toml:5: mqtt.receive_maximum: must be an integer, got "lots"`,
		"nanoactor.toml:6: mqtt.maximum_qos: must be between 0 and 2, got 3",
		`nanoactor.toml:7: mqtt.write_timeout: must be a duration string like "10s", got 5`,
		`nanoactor.toml:13: listener[1].cert_file: is required for a "tls" listener`,
		`nanoactor.toml:13: listener[1].key_file: is required for a "tls" listener`,
		`nanoactor.toml:14: listener[1].bind: "127.0.0.1:1883" is already used by listener[0] ("127.0.0.1:1883")`,
		"nanoactor.toml:15: listener[1].typo: unknown key",
		`nanoactor.toml:18: log.format: must be one of text, json; got "xml"`,
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Each problem is also an *Error, with its parts.
	var one *Error
	if !errors.As(err, &one) || one.File != "nanoactor.toml" || one.Line != 1 || one.Key != "bogus" {
		t.Errorf("errors.As(*Error) = %+v", one)
	}
	if len(errs) != len(want) || errs[3].Line != 5 || errs[3].Key != "mqtt.receive_maximum" {
		t.Errorf("Errors[3] = %+v", errs[3])
	}
}

func TestValidValues(t *testing.T) {
	all := map[string]bool{}
	for _, p := range knownProtocols {
		all[p] = true
	}
	withProtocols(t, all)
	doc := `
[node]
name = "edge-1.eu"

[log]
level = "debug"
format = "json"

[[listener]]
bind = "0.0.0.0:1883"
max_connections = 10000

[[listener]]
protocol = "tls"
bind = "0.0.0.0:8883"
cert_file = "s.crt"
key_file = "s.key"
ca_file = "ca.crt"
verify_peer = true
use_identity_as_username = "cn"
min_tls_version = "1.3"

[[listener]]
name = "web"
protocol = "ws"
bind = "[::1]:8083"

[[listener]]
protocol = "wss"
bind = "localhost:8084"
path = "/ws"
cert_file = "s.crt"
key_file = "s.key"

[[listener]]
protocol = "quic"
bind = "0.0.0.0:1883" # UDP: no conflict with the TCP listener
cert_file = "s.crt"
key_file = "s.key"

[[listener]]
bind = "127.0.0.1:0"
[[listener]]
name = "second-ephemeral"
bind = "127.0.0.1:0"

[mqtt]
max_packet_size = "255MiB"
connect_packet_max = "1KiB"
max_queued_bytes = "1GiB"
max_outbound_bytes = 268435456
connect_timeout = "1m30s"
keepalive_max = 600
keepalive_default = 60
max_session_expiry = "0s"
maximum_qos = 1
slow_client_policy = "disconnect"
shared_subscription_strategy = "random"
max_client_id_len = 23
topic_alias_maximum = 0

[sys]
interval = "0s"
`
	c, err := Parse("ok.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.MaxPacketSize != 255<<20 || c.MQTT.ConnectPacketMax != 1024 || c.MQTT.MaxQueuedBytes != 1<<30 {
		t.Errorf("sizes = %d %d %d", c.MQTT.MaxPacketSize, c.MQTT.ConnectPacketMax, c.MQTT.MaxQueuedBytes)
	}
	if c.MQTT.ConnectTimeout.Std() != 90*time.Second || c.MQTT.WriteTimeout != DefaultWriteTimeout {
		t.Errorf("durations = %v %v", c.MQTT.ConnectTimeout, c.MQTT.WriteTimeout)
	}
	if c.Log.SlogLevel() != slog.LevelDebug {
		t.Errorf("SlogLevel = %v", c.Log.SlogLevel())
	}
	ls := c.Listeners
	if len(ls) != 7 {
		t.Fatalf("%d listeners", len(ls))
	}
	wantNames := []string{"tcp://0.0.0.0:1883", "tls://0.0.0.0:8883", "web", "wss://localhost:8084", "quic://0.0.0.0:1883", "tcp://127.0.0.1:0", "second-ephemeral"}
	for i, l := range ls {
		if l.Name != wantNames[i] {
			t.Errorf("listener[%d].Name = %q, want %q", i, l.Name, wantNames[i])
		}
	}
	if ls[2].Path != DefaultWSPath || ls[3].Path != "/ws" || ls[0].Path != "" {
		t.Errorf("paths = %q %q %q", ls[2].Path, ls[3].Path, ls[0].Path)
	}
	if ls[3].MinTLSVersion != DefaultMinTLSVersion || ls[3].TLSMinVersion() != tls.VersionTLS12 ||
		ls[1].TLSMinVersion() != tls.VersionTLS13 || ls[4].TLSMinVersion() != tls.VersionTLS13 {
		t.Errorf("TLS versions: %q %q", ls[3].MinTLSVersion, ls[1].MinTLSVersion)
	}
	if ls[4].Network() != "udp" || ls[0].Network() != "tcp" || !ls[4].TLS() || ls[2].TLS() || !ls[3].WebSocket() {
		t.Error("Network/TLS/WebSocket accessors")
	}
}

func TestTLSRules(t *testing.T) {
	withProtocols(t, map[string]bool{ProtocolTCP: true, ProtocolTLS: true, ProtocolQUIC: true})
	head := "[[listener]]\nprotocol = \"tls\"\nbind = \"127.0.0.1:8883\"\ncert_file = \"c\"\nkey_file = \"k\"\n"
	for _, tc := range []errCase{
		{"verify_peer needs ca_file", head + "verify_peer = true\n",
			[]string{`t.toml:6: listener[0].ca_file: is required when verify_peer is true`}},
		{"identity needs verify_peer", head + "use_identity_as_username = \"cn\"\n",
			[]string{`t.toml:6: listener[0].use_identity_as_username: requires verify_peer = true`}},
		{"unknown identity", head + "ca_file = \"ca\"\nverify_peer = true\nuse_identity_as_username = \"email\"\n",
			[]string{`t.toml:8: listener[0].use_identity_as_username: must be one of cn, dn, san, or "" (off); got "email"`}},
		{"bad tls version", head + "min_tls_version = \"1.0\"\n",
			[]string{`t.toml:6: listener[0].min_tls_version: must be one of 1.2, 1.3; got "1.0"`}},
		{"tcp_nodelay on quic", "[[listener]]\nprotocol = \"quic\"\nbind = \"127.0.0.1:14567\"\ncert_file = \"c\"\nkey_file = \"k\"\ntcp_nodelay = false\n",
			[]string{`t.toml:6: listener[0].tcp_nodelay: is only used by tcp, tls, ws and wss listeners, not "quic"`}},
		{"tls 1.2 on quic", "[[listener]]\nprotocol = \"quic\"\nbind = \"127.0.0.1:14567\"\ncert_file = \"c\"\nkey_file = \"k\"\nmin_tls_version = \"1.2\"\n",
			[]string{`t.toml:6: listener[0].min_tls_version: QUIC always uses TLS 1.3`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(tc.doc))
			if err == nil {
				t.Fatal("Parse succeeded")
			}
			for _, w := range tc.want {
				if !containsPrefix(strings.Split(err.Error(), "\n"), w) {
					t.Errorf("missing %q in:\n%s", w, err)
				}
			}
		})
	}
}

// withProtocols sets SupportedProtocols for one (non-parallel) test.
func withProtocols(t *testing.T, p map[string]bool) {
	old := SupportedProtocols
	SupportedProtocols = p
	t.Cleanup(func() { SupportedProtocols = old })
}

func TestValidateGoConfig(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.MQTT.MaxInflight = 0
	c.Listeners = append(c.Listeners, Listener{Name: "x", Protocol: ProtocolTCP, Bind: DefaultListenerBind})
	err := c.Validate()
	want := "listener[1].bind: \"127.0.0.1:1883\" is already used by listener[0] (\"127.0.0.1:1883\")\n" +
		"mqtt.max_inflight: must be between 1 and 65535, got 0"
	if err == nil || err.Error() != want {
		t.Fatalf("Validate() = %v, want\n%s", err, want)
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "nanoactor.toml", Line: 12, Key: "mqtt.max_packet_size", Msg: "must be between 16 and 268435455, got 0"},
			"nanoactor.toml:12: mqtt.max_packet_size: must be between 16 and 268435455, got 0"},
		{Error{File: "f.toml", Key: "mqtt.connect_packet_max", Msg: "m"}, "f.toml: mqtt.connect_packet_max: m"},
		{Error{File: "f.toml", Line: 3, Msg: "invalid TOML"}, "f.toml:3: invalid TOML"},
		{Error{Key: "k", Msg: "m"}, "k: m"},
		{Error{Line: 2, Key: "k", Msg: "m"}, "line 2: k: m"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nanoactor.toml")
	if err := os.WriteFile(path, []byte("[mqtt]\nmax_inflight = 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.MQTT.MaxInflight != 7 || c.Listeners[0].Bind != DefaultListenerBind {
		t.Errorf("Load = %+v", c)
	}

	if err := os.WriteFile(path, []byte("[mqtt]\nmax_inflight = 0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if want := path + ":2: mqtt.max_inflight: must be between 1 and 65535, got 0"; err == nil || err.Error() != want {
		t.Errorf("Load(invalid) = %v, want %s", err, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(path)
	if err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error does not match fs.ErrNotExist: %v", err)
	}
	if want := "load config: open " + path + ": no such file or directory"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

func TestLoadChecksCertificateFiles(t *testing.T) {
	withProtocols(t, map[string]bool{ProtocolTCP: true, ProtocolTLS: true})
	dir := t.TempDir()
	cert := filepath.Join(dir, "server.crt")
	if err := os.WriteFile(cert, []byte("pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "server.key")
	doc := "[[listener]]\nprotocol = \"tls\"\nbind = \"127.0.0.1:8883\"\ncert_file = \"" + cert + "\"\nkey_file = \"" + missing + "\"\n"
	path := filepath.Join(dir, "nanoactor.toml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + `:5: listener[0].key_file: cannot read "` + missing + `": no such file or directory`
	if err == nil || err.Error() != want {
		t.Errorf("Load = %v, want %s", err, want)
	}
	// Parse does not look at files.
	if _, err := Parse(path, []byte(doc)); err != nil {
		t.Errorf("Parse = %v", err)
	}
}

// A Config marshaled with go-toml parses back to itself: durations
// marshal as strings, not nanoseconds.
func TestMarshalRoundTrip(t *testing.T) {
	c := Default()
	c.MQTT.ConnectTimeout = Duration(1500 * time.Millisecond)
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

func TestSlogLevel(t *testing.T) {
	for level, want := range map[string]slog.Level{
		LogDebug: slog.LevelDebug, LogInfo: slog.LevelInfo, LogWarn: slog.LevelWarn, LogError: slog.LevelError,
	} {
		if got := (Log{Level: level}).SlogLevel(); got != want {
			t.Errorf("SlogLevel(%q) = %v, want %v", level, got, want)
		}
	}
}

// TestProtocolNotServed checks that a known protocol missing from
// SupportedProtocols is refused with its line.
func TestProtocolNotServed(t *testing.T) {
	delete(SupportedProtocols, ProtocolTLS)
	defer func() { SupportedProtocols[ProtocolTLS] = true }()
	_, err := Parse("t.toml", []byte("[[listener]]\nprotocol = \"tls\"\nbind = \"127.0.0.1:8883\"\ncert_file = \"c\"\nkey_file = \"k\"\n"))
	want := `t.toml:2: listener[0].protocol: "tls" is not served by this build yet`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
}

// TestTCPNoDelay: tcp_nodelay is true when left out (in a file, and in a
// Listener built in Go), and false when written so.
func TestTCPNoDelay(t *testing.T) {
	c, err := Parse("t.toml", []byte("[[listener]]\nbind = \"127.0.0.1:1\"\n[[listener]]\nbind = \"127.0.0.1:2\"\ntcp_nodelay = false\n[[listener]]\nbind = \"127.0.0.1:3\"\ntcp_nodelay = true\n"))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false, true} {
		if got := c.Listeners[i].NoDelay(); got != want {
			t.Errorf("listener[%d].NoDelay() = %v, want %v", i, got, want)
		}
	}
	if !(&Listener{}).NoDelay() || !Default().Listeners[0].NoDelay() {
		t.Error("a listener that leaves tcp_nodelay out must have TCP_NODELAY")
	}
}
