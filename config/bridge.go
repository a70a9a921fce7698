package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Bridge is one [[bridge]] entry: a connection from this broker, as an MQTT
// client, to a remote broker, forwarding local topics out and remote topics
// in. See the bridge package for the behaviour.
type Bridge struct {
	// Name labels the bridge in logs; unique among bridges, 1 to 64
	// characters of A-Z a-z 0-9 . _ - . Required.
	Name string `toml:"name"`
	// URL is the remote broker, in NanoMQ's schemes:
	// "mqtt-tcp://host:port" (default port 1883),
	// "tls+mqtt-tcp://host:port" (default port 8883) and
	// "mqtt-quic://host:port" (default port 14567). Nothing may follow the
	// port: no path, query or user. Required; Endpoint splits it.
	URL string `toml:"url"`
	// ProtoVer is the MQTT version spoken to the remote: 4 (3.1.1) or 5.
	ProtoVer int `toml:"proto_ver"`
	// TryPrivate (proto_ver = 4 only) sets Mosquitto's bridge bit in
	// CONNECT (Mosquitto's try_private): the remote then knows the client
	// is a bridge, does not send back what the bridge published, and keeps
	// RETAIN on what it forwards. Set it false for a remote that refuses
	// the bit. v5 needs no bit: the bridge subscribes with No Local.
	TryPrivate bool `toml:"try_private"`
	// ClientID is the client identifier used at the remote, 1 to 65535
	// bytes. Default: node name + "-bridge-" + bridge name. Two bridges to
	// the same endpoint may not share one.
	ClientID string `toml:"client_id"`
	// Username and Password are sent in CONNECT when not empty.
	Username string `toml:"username"`
	Password string `toml:"password"`
	// KeepAlive is the MQTT keepalive asked of the remote (whole seconds,
	// 0 = off, at most 65535s). A link silent for 1.5 × KeepAlive is taken
	// as dead and reconnected.
	KeepAlive Duration `toml:"keepalive"`
	// CleanStart asks the remote for a new session on every connection.
	// Keep it false for exactly-once across reconnects: the remote then
	// keeps the bridge's session and its QoS 2 state.
	CleanStart bool `toml:"clean_start"`
	// SessionExpiry is the v5 Session Expiry Interval asked of the remote
	// (whole seconds; ignored with proto_ver = 4, where clean_start = false
	// keeps the session as long as the remote does).
	SessionExpiry Duration `toml:"session_expiry"`
	// ConnectTimeout bounds dialling, the TLS or QUIC handshake and the
	// wait for CONNACK.
	ConnectTimeout Duration `toml:"connect_timeout"`
	// BackoffMin and BackoffMax bound the wait before a reconnect: it starts
	// at BackoffMin, doubles after every failed attempt up to BackoffMax,
	// and is jittered by up to ±25%. A connection that lasted a while
	// resets it.
	BackoffMin Duration `toml:"backoff_min"`
	BackoffMax Duration `toml:"backoff_max"`
	// MaxInflight caps the QoS 1/2 messages sent to the remote and not yet
	// acknowledged; the remote's Receive Maximum lowers it (1..65535).
	MaxInflight int `toml:"max_inflight"`
	// OutboxMaxMessages and OutboxMaxBytes bound the outbox: the messages
	// waiting to go out or waiting for the remote's acknowledgement, kept
	// across link flaps. At least 1 message and 1 KiB.
	OutboxMaxMessages int  `toml:"outbox_max_messages"`
	OutboxMaxBytes    Size `toml:"outbox_max_bytes"`
	// OutboxDrop is what a full outbox drops: BridgeDropOldest (the oldest
	// message not yet sent, so the newest data gets through after an
	// outage) or BridgeDropNewest (the message arriving). Either way the
	// drop is logged and counted. Messages already sent and not yet
	// acknowledged are never dropped.
	OutboxDrop string `toml:"outbox_drop"`
	// TLS configures tls+mqtt-tcp and mqtt-quic; with mqtt-tcp every key
	// of it must be left out.
	TLS BridgeTLS `toml:"tls"`
	// Topics are the forwarding rules, in file order; at least one.
	Topics []BridgeTopic `toml:"topic"`
}

// BridgeTLS is the [bridge.tls] table: the client side of TLS (and QUIC).
type BridgeTLS struct {
	// CAFile holds the PEM certificates the remote's certificate must chain
	// to. Empty: the system roots.
	CAFile string `toml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key for mutual
	// TLS; both or neither.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// ServerName is the name checked in the remote's certificate (and sent
	// in SNI). Empty: the URL's host.
	ServerName string `toml:"server_name"`
	// InsecureSkipVerify accepts any certificate from the remote. For tests
	// only: it gives up the protection TLS is there for.
	InsecureSkipVerify bool `toml:"insecure_skip_verify"`
}

// BridgeTopic is one [[bridge.topic]] rule, in Mosquitto's model: the
// local topic is LocalPrefix + Pattern and the remote one RemotePrefix +
// Pattern.
type BridgeTopic struct {
	// Pattern is a topic filter (wildcards allowed, no $share). Required.
	// LocalPrefix + Pattern and RemotePrefix + Pattern are valid filters.
	Pattern string `toml:"pattern"`
	// Direction is BridgeOut (local to remote), BridgeIn (remote to local)
	// or BridgeBoth.
	Direction string `toml:"direction"`
	// QoS is the highest QoS used on the bridge for these messages; a
	// message never goes at a QoS above its own (0..2).
	QoS int `toml:"qos"`
	// LocalPrefix and RemotePrefix are put in front of Pattern on each side
	// and swapped when a message crosses. Each is empty or a valid topic
	// name with no wildcard.
	LocalPrefix  string `toml:"local_prefix"`
	RemotePrefix string `toml:"remote_prefix"`
	// Retain keeps the RETAIN flag of forwarded messages (v5: subscriptions
	// in use Retain As Published). false clears it.
	Retain bool `toml:"retain"`
}

// Values of BridgeTopic.Direction.
const (
	BridgeOut  = "out"
	BridgeIn   = "in"
	BridgeBoth = "both"
)

// Values of Bridge.OutboxDrop.
const (
	BridgeDropOldest = "oldest"
	BridgeDropNewest = "newest"
)

// Bridge URL schemes (NanoMQ's).
const (
	BridgeSchemeTCP  = "mqtt-tcp"     // MQTT over TCP
	BridgeSchemeTLS  = "tls+mqtt-tcp" // MQTT over TLS over TCP
	BridgeSchemeQUIC = "mqtt-quic"    // MQTT over QUIC (UDP, TLS 1.3)
)

// Ports Endpoint uses when a bridge URL has none, per scheme.
const (
	DefaultBridgePortTCP  = 1883
	DefaultBridgePortTLS  = 8883
	DefaultBridgePortQUIC = 14567
)

// Defaults of [[bridge]] and [[bridge.topic]].
const (
	DefaultBridgeProtoVer          = 4
	DefaultBridgeKeepAlive         = Duration(60e9)
	DefaultBridgeCleanStart        = false
	DefaultBridgeTryPrivate        = true
	DefaultBridgeSessionExpiry     = Duration(3600e9)
	DefaultBridgeConnectTimeout    = Duration(10e9)
	DefaultBridgeBackoffMin        = Duration(500e6)
	DefaultBridgeBackoffMax        = Duration(30e9)
	DefaultBridgeMaxInflight       = 64
	DefaultBridgeOutboxMaxMessages = 100000
	DefaultBridgeOutboxMaxBytes    = Size(64 << 20)
	DefaultBridgeOutboxDrop        = BridgeDropOldest
	DefaultBridgeTopicDirection    = BridgeOut
	DefaultBridgeTopicQoS          = 1
	DefaultBridgeTopicRetain       = true
)

// Endpoint splits URL into its scheme (one of the BridgeScheme* constants,
// lower case) and the host:port to dial, with the scheme's default port
// when URL has none (DefaultBridgePortTCP, ...). An IPv6 host comes back in
// brackets ("[::1]:1883"). It fails only on a URL Validate refuses, so for
// a Config from Parse or Load it never does.
func (b *Bridge) Endpoint() (scheme, hostport string, err error) {
	scheme, hostport, err = splitBridgeURL(b.URL)
	if err != nil {
		return "", "", fmt.Errorf("bridge %q: url %w", b.Name, err)
	}
	return scheme, hostport, nil
}

// UsesTLS reports whether the bridge's scheme runs over TLS (tls+mqtt-tcp
// and mqtt-quic), and so reads TLS.
func (b *Bridge) UsesTLS() bool {
	scheme, _, err := splitBridgeURL(b.URL)
	return err == nil && scheme != BridgeSchemeTCP
}

// LocalFilter returns LocalPrefix + Pattern: the filter the rule matches on
// this broker.
func (t *BridgeTopic) LocalFilter() string { return t.LocalPrefix + t.Pattern }

// RemoteFilter returns RemotePrefix + Pattern: the filter the rule matches
// on the remote broker.
func (t *BridgeTopic) RemoteFilter() string { return t.RemotePrefix + t.Pattern }

var bridgeSchemes = []string{BridgeSchemeTCP, BridgeSchemeTLS, BridgeSchemeQUIC}

// splitBridgeURL does the work of Endpoint. Its errors complete "url ...",
// as Validate prints them after the key.
func splitBridgeURL(s string) (scheme, hostport string, err error) {
	if s == "" {
		return "", "", errors.New(`is required, like "mqtt-tcp://broker.example.com:1883"`)
	}
	shape := fmt.Errorf("must be scheme://host[:port] with scheme %s, got %q", strings.Join(bridgeSchemes, ", "), s)
	if !strings.Contains(s, "://") {
		return "", "", shape
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", "", shape
	}
	var port int
	switch u.Scheme { // url.Parse lowers the scheme
	case BridgeSchemeTCP:
		port = DefaultBridgePortTCP
	case BridgeSchemeTLS:
		port = DefaultBridgePortTLS
	case BridgeSchemeQUIC:
		port = DefaultBridgePortQUIC
	default:
		return "", "", fmt.Errorf("scheme must be one of %s; got %q", strings.Join(bridgeSchemes, ", "), u.Scheme)
	}
	if u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || u.Opaque != "" {
		return "", "", fmt.Errorf("must be %s://host[:port] with nothing after the port, got %q", u.Scheme, s)
	}
	host := u.Hostname()
	if host == "" {
		return "", "", fmt.Errorf("has no host, got %q", s)
	}
	if net.ParseIP(host) == nil && !isHostName(host) {
		return "", "", fmt.Errorf("host must be an IP address or a host name, got %q", host)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return "", "", fmt.Errorf("port must be a number from 1 to 65535, got %q", p)
		}
		port = int(n)
	} else if strings.HasSuffix(u.Host, ":") {
		return "", "", fmt.Errorf("has an empty port, got %q", s)
	}
	return u.Scheme, net.JoinHostPort(strings.ToLower(host), strconv.Itoa(port)), nil
}
