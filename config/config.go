package config

import (
	"crypto/tls"
	"log/slog"
)

// Config is the whole broker configuration: plain data with toml tags, one
// field per section of the file. Parse and Load return it complete, with
// every default applied; it is not changed afterwards by this package and
// may be read from any goroutine.
type Config struct {
	Node      Node       `toml:"node"`
	Log       Log        `toml:"log"`
	Listeners []Listener `toml:"listener"`
	MQTT      MQTT       `toml:"mqtt"`
	Sys       Sys        `toml:"sys"`
	Bridges   []Bridge   `toml:"bridge"`
}

// Node is the [node] section.
type Node struct {
	// Name identifies this broker in logs, $SYS topics and, later, to the
	// other nodes of a cluster. 1 to 64 characters of A-Z a-z 0-9 . _ -
	Name string `toml:"name"`
}

// Log is the [log] section.
type Log struct {
	Level  string `toml:"level"`  // LogDebug, LogInfo, LogWarn or LogError
	Format string `toml:"format"` // LogText or LogJSON
}

// Log levels and formats accepted by [log].
const (
	LogDebug = "debug"
	LogInfo  = "info"
	LogWarn  = "warn"
	LogError = "error"

	LogText = "text" // slog.TextHandler: key=value pairs
	LogJSON = "json" // slog.JSONHandler: one JSON object per line
)

// SlogLevel returns Level as a slog.Level; an unknown level (which Validate
// refuses) is slog.LevelInfo.
func (l Log) SlogLevel() slog.Level {
	switch l.Level {
	case LogDebug:
		return slog.LevelDebug
	case LogWarn:
		return slog.LevelWarn
	case LogError:
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Listener is one [[listener]] entry: a socket the broker accepts MQTT
// clients on. Fields that only apply to some protocols are refused by
// Validate on the others, so a setting is never silently ignored.
type Listener struct {
	// Name labels the listener in logs and metrics. When the file leaves it
	// out, Parse sets it to protocol://bind ("tls://0.0.0.0:8883").
	Name string `toml:"name"`
	// Protocol is ProtocolTCP, ProtocolTLS, ProtocolWS, ProtocolWSS or
	// ProtocolQUIC; left out, ProtocolTCP.
	Protocol string `toml:"protocol"`
	// Bind is the local address, host:port. An empty host or 0.0.0.0 or
	// [::] listens on every interface; port 0 picks a free port.
	Bind string `toml:"bind"`
	// MaxConnections caps the open connections on this listener; a
	// connection past it is closed right after accept. 0 = unlimited.
	MaxConnections int `toml:"max_connections"`
	// TCPNoDelay sets TCP_NODELAY on accepted connections (tcp, tls, ws,
	// wss): every write leaves at once, instead of waiting, by Nagle's
	// algorithm, for the acknowledgement of the data before it. Nil (left
	// out): DefaultTCPNoDelay; read it through NoDelay. quic runs over UDP
	// and has no such option.
	TCPNoDelay *bool `toml:"tcp_nodelay,omitempty"`

	// Path is the HTTP path of the WebSocket endpoint (ws, wss only).
	// Left out, DefaultWSPath.
	Path string `toml:"path,omitempty"`

	// CertFile and KeyFile are the PEM server certificate (chain) and its
	// private key (tls, wss, quic: required).
	CertFile string `toml:"cert_file,omitempty"`
	KeyFile  string `toml:"key_file,omitempty"`
	// CAFile holds the PEM certificates that client certificates must chain
	// to when VerifyPeer is set (tls, wss, quic).
	CAFile string `toml:"ca_file,omitempty"`
	// VerifyPeer requires every client to present a certificate that chains
	// to CAFile (mutual TLS). It requires CAFile.
	VerifyPeer bool `toml:"verify_peer,omitempty"`
	// UseIdentityAsUsername replaces the CONNECT username with the verified
	// client certificate's identity: IdentityCN (subject common name),
	// IdentityDN (the whole subject, RFC 2253 form), IdentitySAN (the first
	// DNS name, else e-mail address, else URI subject alternative name), or
	// "" (off). It requires VerifyPeer, since an unverified identity could
	// be forged.
	UseIdentityAsUsername string `toml:"use_identity_as_username,omitempty"`
	// MinTLSVersion is the oldest TLS version accepted: "1.2" or "1.3"
	// (tls, wss). QUIC always uses TLS 1.3. Left out, DefaultMinTLSVersion.
	MinTLSVersion string `toml:"min_tls_version,omitempty"`
}

// NoDelay reports whether accepted connections get TCP_NODELAY
// (TCPNoDelay, or DefaultTCPNoDelay when it is left out).
func (l *Listener) NoDelay() bool {
	if l.TCPNoDelay == nil {
		return DefaultTCPNoDelay
	}
	return *l.TCPNoDelay
}

// Listener protocols. A known protocol may still be refused by Validate when
// this build does not serve it: see SupportedProtocols.
const (
	ProtocolTCP  = "tcp"  // MQTT over TCP
	ProtocolTLS  = "tls"  // MQTT over TLS over TCP
	ProtocolWS   = "ws"   // MQTT over WebSocket (subprotocol "mqtt")
	ProtocolWSS  = "wss"  // MQTT over WebSocket over TLS
	ProtocolQUIC = "quic" // MQTT over QUIC (one bidirectional stream, TLS 1.3)
)

// knownProtocols lists every protocol a listener may name, in the order
// error messages list them.
var knownProtocols = []string{ProtocolTCP, ProtocolTLS, ProtocolWS, ProtocolWSS, ProtocolQUIC}

// SupportedProtocols is the set of protocols the running build serves; the
// transports work adds the rest as each one lands. Validate refuses a
// listener whose protocol is known but missing here. It is read by Parse
// and Validate without locking: change it only during program
// initialization.
var SupportedProtocols = map[string]bool{ProtocolTCP: true, ProtocolTLS: true, ProtocolWS: true,
	ProtocolWSS: true, ProtocolQUIC: true}

// Values of Listener.UseIdentityAsUsername.
const (
	IdentityCN  = "cn"
	IdentityDN  = "dn"
	IdentitySAN = "san"
)

// TLS reports whether the listener's protocol runs over TLS (tls, wss,
// quic), and so needs CertFile and KeyFile.
func (l *Listener) TLS() bool {
	switch l.Protocol {
	case ProtocolTLS, ProtocolWSS, ProtocolQUIC:
		return true
	}
	return false
}

// WebSocket reports whether the listener serves MQTT over WebSocket.
func (l *Listener) WebSocket() bool {
	return l.Protocol == ProtocolWS || l.Protocol == ProtocolWSS
}

// Network returns the network Bind is opened on: "udp" for QUIC, "tcp" for
// the others.
func (l *Listener) Network() string {
	if l.Protocol == ProtocolQUIC {
		return "udp"
	}
	return "tcp"
}

// TLSMinVersion returns MinTLSVersion as a crypto/tls version constant:
// tls.VersionTLS13 for "1.3" and for QUIC, tls.VersionTLS12 otherwise.
func (l *Listener) TLSMinVersion() uint16 {
	if l.MinTLSVersion == "1.3" || l.Protocol == ProtocolQUIC {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// MQTT is the [mqtt] section: protocol limits and session behaviour shared
// by every listener. Sizes are bytes, durations are Durations, keepalives
// are seconds as on the wire.
type MQTT struct {
	// MaxPacketSize is the largest packet the broker accepts from a client,
	// announced to v5 clients as Maximum Packet Size; a larger packet closes
	// the connection (v5 reason 0x95). The broker also never sends a packet
	// larger than this, nor than the client's own Maximum Packet Size.
	MaxPacketSize Size `toml:"max_packet_size"`
	// ConnectPacketMax is the largest packet accepted before CONNECT has
	// been accepted: a small limit that keeps unauthenticated sockets from
	// making the broker buffer MaxPacketSize bytes each.
	ConnectPacketMax Size `toml:"connect_packet_max"`
	// ConnectTimeout is the time a new connection has to send CONNECT.
	ConnectTimeout Duration `toml:"connect_timeout"`
	// ReceiveMaximum is the number of QoS 1/2 PUBLISHes a v5 client may
	// have unacknowledged toward the broker, announced in CONNACK (1..65535).
	ReceiveMaximum int `toml:"receive_maximum"`
	// MaxInflight is the number of QoS 1/2 messages the broker has in flight
	// to one client; the client's own Receive Maximum lowers it (1..65535).
	MaxInflight int `toml:"max_inflight"`
	// MaxQueuedMessages caps the messages waiting in one session (offline,
	// or beyond the inflight window). 0 = no count limit: MaxQueuedBytes
	// still applies.
	MaxQueuedMessages int `toml:"max_queued_messages"`
	// MaxQueuedBytes caps the bytes of the messages waiting in one session.
	// A message arriving at a full queue is dropped and counted.
	MaxQueuedBytes Size `toml:"max_queued_bytes"`
	// QueueQoS0Messages also queues QoS 0 messages for an offline persistent
	// session (they count against the queue limits).
	QueueQoS0Messages bool `toml:"queue_qos0_messages"`
	// MaxOutboundBytes is the bytes one connection may have waiting for its
	// socket before SlowClientPolicy applies.
	MaxOutboundBytes Size `toml:"max_outbound_bytes"`
	// WriteTimeout closes a connection whose pending write makes no progress
	// for this long (the session is kept).
	WriteTimeout Duration `toml:"write_timeout"`
	// ProgressTimeout is the progress watchdog: a connection with bytes
	// waiting for its socket whose writer makes no progress for this long
	// is closed with a supervision log line, even if no single write is
	// blocked (a wedged writer). The session is kept.
	ProgressTimeout Duration `toml:"progress_timeout"`
	// SlowClientPolicy is what happens to a client with MaxOutboundBytes
	// waiting: SlowClientDropQoS0 or SlowClientDisconnect.
	SlowClientPolicy string `toml:"slow_client_policy"`
	// KeepaliveMax, in seconds, is the largest keepalive the broker lets a
	// v5 client use: one asking for more is told KeepaliveMax in Server
	// Keep Alive, and so is one asking for 0 (no keepalive) when
	// KeepaliveMax is below 65535. 65535 = no limit. MQTT 3.1.1 cannot tell
	// a client a new value, so a 3.1.1 client keeps its own. 1..65535.
	KeepaliveMax int `toml:"keepalive_max"`
	// KeepaliveDefault, in seconds, when nonzero replaces the keepalive
	// every v5 client asks for (sent as Server Keep Alive). 0 = use the
	// client's value. At most KeepaliveMax.
	KeepaliveDefault int `toml:"keepalive_default"`
	// MaxSessionExpiry caps the session expiry a v5 client asks for, and is
	// the expiry of a 3.1.1 session with clean_session = 0. 0 = sessions end
	// with their connection. Whole seconds; the largest value,
	// MaxSessionExpiryLimit, means never.
	MaxSessionExpiry Duration `toml:"max_session_expiry"`
	// TopicAliasMaximum is the number of topic aliases a v5 client may
	// define toward the broker, announced in CONNACK. 0 = none (0..65535).
	TopicAliasMaximum int `toml:"topic_alias_maximum"`
	// MaxTopicLevels caps the levels of a topic name or filter ("a/b/c" has
	// 3); deeper ones are refused (1..65535).
	MaxTopicLevels int `toml:"max_topic_levels"`
	// MaximumQoS is the highest QoS the broker accepts (0..2), announced to
	// v5 clients; subscriptions are granted at most this QoS.
	MaximumQoS int `toml:"maximum_qos"`
	// RetainAvailable, WildcardSubscriptionAvailable,
	// SharedSubscriptionAvailable and SubscriptionIdentifierAvailable switch
	// the matching features on; each is announced to v5 clients in CONNACK,
	// and a client using a switched-off feature is refused.
	RetainAvailable                 bool `toml:"retain_available"`
	WildcardSubscriptionAvailable   bool `toml:"wildcard_subscription_available"`
	SharedSubscriptionAvailable     bool `toml:"shared_subscription_available"`
	SubscriptionIdentifierAvailable bool `toml:"subscription_identifier_available"`
	// SharedSubscriptionStrategy picks the member of a $share group that
	// gets each message: SharedRoundRobin or SharedRandom.
	SharedSubscriptionStrategy string `toml:"shared_subscription_strategy"`
	// AllowZeroLengthClientID lets a client connect with an empty client id;
	// the broker assigns one (v5: Assigned Client Identifier). 3.1.1 clients
	// must then also ask for a clean session [MQTT-3.1.3-7].
	AllowZeroLengthClientID bool `toml:"allow_zero_length_clientid"`
	// MaxClientIDLen caps the client id length in bytes. At least 23, which
	// every server must allow [MQTT-3.1.3-5]; at most 65535.
	MaxClientIDLen int `toml:"max_client_id_len"`
	// MaxSubscriptions caps the subscriptions of one session; one more is
	// refused (SUBACK 0x97 in v5, 0x80 in 3.1.1). 0 = unlimited.
	MaxSubscriptions int `toml:"max_subscriptions"`
	// RetainedMaxMessages caps the retained messages the broker keeps; a new
	// retained topic past it is not stored (the message is still
	// delivered). 0 = unlimited.
	RetainedMaxMessages int `toml:"retained_max_messages"`
	// RetainedMaxBytes caps the total payload bytes of retained messages,
	// with the same rule. 0 = unlimited.
	RetainedMaxBytes Size `toml:"retained_max_bytes"`
}

// Values of MQTT.SlowClientPolicy.
const (
	// SlowClientDropQoS0: past MaxOutboundBytes, QoS 0 messages for the
	// client are dropped (and counted); QoS 1/2 messages wait in the session
	// queue and are sent as the socket drains. The connection is closed only
	// by WriteTimeout.
	SlowClientDropQoS0 = "drop_qos0"
	// SlowClientDisconnect: past MaxOutboundBytes, the connection is closed
	// (v5 reason 0x97, Quota exceeded). The session and its QoS 1/2 messages
	// are kept for the next connection.
	SlowClientDisconnect = "disconnect"
)

// Values of MQTT.SharedSubscriptionStrategy.
const (
	SharedRoundRobin = "round_robin" // each member in turn
	SharedRandom     = "random"      // a member picked at random
)

// Sys is the [sys] section: the broker's own $SYS topics.
type Sys struct {
	// Interval is how often $SYS topics are published. 0 = never.
	Interval Duration `toml:"interval"`
}
