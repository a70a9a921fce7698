package config

import (
	_ "embed"
	"fmt"
	"math"
	"sync"
	"time"
)

// Defaults: the value of each key the file leaves out. default.toml writes
// every one of them, and a test keeps the two equal.
const (
	DefaultNodeName  = "nanoactor"
	DefaultLogLevel  = LogInfo
	DefaultLogFormat = LogText

	// The listener used when the file has no [[listener]]: plain MQTT on
	// the loopback interface only, so a broker started without a
	// configuration is not reachable from the network.
	DefaultListenerName     = "default"
	DefaultListenerProtocol = ProtocolTCP
	DefaultListenerBind     = "127.0.0.1:1883"

	DefaultWSPath        = "/mqtt" // Listener.Path of a ws/wss listener
	DefaultMinTLSVersion = "1.2"   // Listener.MinTLSVersion of a tls/wss listener
	DefaultTCPNoDelay    = true    // Listener.TCPNoDelay of a tcp/tls/ws/wss listener

	DefaultMaxPacketSize     Size     = 1 << 20 // 1 MiB
	DefaultConnectPacketMax  Size     = 64 << 10
	DefaultConnectTimeout    Duration = Duration(10 * time.Second)
	DefaultReceiveMaximum             = 1024
	DefaultMaxInflight                = 256
	DefaultMaxQueuedMessages          = 1000
	DefaultMaxQueuedBytes    Size     = 16 << 20
	DefaultQueueQoS0Messages          = false
	DefaultMaxOutboundBytes  Size     = 4 << 20
	DefaultWriteTimeout      Duration = Duration(10 * time.Second)
	DefaultProgressTimeout   Duration = Duration(20 * time.Second)
	DefaultSlowClientPolicy           = SlowClientDropQoS0
	DefaultKeepaliveMax               = 65535 // seconds: no limit
	DefaultKeepaliveDefault           = 0     // seconds: the client's value
	DefaultMaxSessionExpiry  Duration = Duration(24 * time.Hour)
	DefaultTopicAliasMaximum          = 64
	DefaultMaxTopicLevels             = 128
	DefaultMaximumQoS                 = 2

	DefaultRetainAvailable                 = true
	DefaultWildcardSubscriptionAvailable   = true
	DefaultSharedSubscriptionAvailable     = true
	DefaultSubscriptionIdentifierAvailable = true
	DefaultSharedSubscriptionStrategy      = SharedRoundRobin
	DefaultAllowZeroLengthClientID         = true

	DefaultMaxClientIDLen           = 65535
	DefaultMaxSubscriptions         = 0 // unlimited
	DefaultRetainedMaxMessages      = 0 // unlimited
	DefaultRetainedMaxBytes    Size = 0 // unlimited

	DefaultSysInterval Duration = Duration(10 * time.Second)
)

// Bounds Validate enforces beyond the obvious ones.
const (
	// MinPacketSizeLimit is the smallest mqtt.max_packet_size and
	// mqtt.connect_packet_max accepted: below it not even a CONNECT fits.
	MinPacketSizeLimit Size = 16
	// MaxPacketSizeLimit is the largest packet MQTT can express: a 1-byte
	// header and a 4-byte Remaining Length of at most 268435455.
	MaxPacketSizeLimit Size = 268435455
	// MinClientIDLenLimit is the client id length every server must accept
	// [MQTT-3.1.3-5].
	MinClientIDLenLimit = 23
	// MaxSessionExpiryLimit is the largest v5 Session Expiry Interval,
	// 0xFFFFFFFF seconds, which means the session never expires.
	MaxSessionExpiryLimit Duration = Duration(math.MaxUint32 * time.Second)
)

//go:embed default.toml
var defaultFile []byte

// DefaultFile returns the embedded default configuration file: every key
// with its default value and a comment giving its meaning and unit. It is
// what `nanoactor config default` prints. The caller owns the returned copy.
func DefaultFile() []byte {
	return append([]byte(nil), defaultFile...)
}

var parsedDefault = sync.OnceValues(func() (*Config, error) {
	return Parse("default.toml", defaultFile)
})

// Default returns the configuration the broker runs with when given no file:
// the embedded default file, parsed. It is equal to what Parse returns for
// an empty file. Each call returns a new Config the caller may change. It
// panics only if the embedded file is broken, which the package tests rule
// out.
func Default() *Config {
	c, err := parsedDefault()
	if err != nil {
		panic("config: embedded default.toml: " + err.Error())
	}
	return c.clone()
}

// clone returns a deep copy of c.
func (c *Config) clone() *Config {
	out := *c
	out.Listeners = append([]Listener(nil), c.Listeners...)
	out.Bridges = append([]Bridge(nil), c.Bridges...)
	for i := range out.Bridges {
		out.Bridges[i].Topics = append([]BridgeTopic(nil), c.Bridges[i].Topics...)
	}
	return &out
}

// base returns the Config that a document is decoded over: every default
// except the listeners, which are filled in after decoding (see
// applyDefaults) because a file that writes [[listener]] replaces them.
func base() *Config {
	return &Config{
		Node: Node{Name: DefaultNodeName},
		Log:  Log{Level: DefaultLogLevel, Format: DefaultLogFormat},
		MQTT: MQTT{
			MaxPacketSize:                   DefaultMaxPacketSize,
			ConnectPacketMax:                DefaultConnectPacketMax,
			ConnectTimeout:                  DefaultConnectTimeout,
			ReceiveMaximum:                  DefaultReceiveMaximum,
			MaxInflight:                     DefaultMaxInflight,
			MaxQueuedMessages:               DefaultMaxQueuedMessages,
			MaxQueuedBytes:                  DefaultMaxQueuedBytes,
			QueueQoS0Messages:               DefaultQueueQoS0Messages,
			MaxOutboundBytes:                DefaultMaxOutboundBytes,
			WriteTimeout:                    DefaultWriteTimeout,
			ProgressTimeout:                 DefaultProgressTimeout,
			SlowClientPolicy:                DefaultSlowClientPolicy,
			KeepaliveMax:                    DefaultKeepaliveMax,
			KeepaliveDefault:                DefaultKeepaliveDefault,
			MaxSessionExpiry:                DefaultMaxSessionExpiry,
			TopicAliasMaximum:               DefaultTopicAliasMaximum,
			MaxTopicLevels:                  DefaultMaxTopicLevels,
			MaximumQoS:                      DefaultMaximumQoS,
			RetainAvailable:                 DefaultRetainAvailable,
			WildcardSubscriptionAvailable:   DefaultWildcardSubscriptionAvailable,
			SharedSubscriptionAvailable:     DefaultSharedSubscriptionAvailable,
			SubscriptionIdentifierAvailable: DefaultSubscriptionIdentifierAvailable,
			SharedSubscriptionStrategy:      DefaultSharedSubscriptionStrategy,
			AllowZeroLengthClientID:         DefaultAllowZeroLengthClientID,
			MaxClientIDLen:                  DefaultMaxClientIDLen,
			MaxSubscriptions:                DefaultMaxSubscriptions,
			RetainedMaxMessages:             DefaultRetainedMaxMessages,
			RetainedMaxBytes:                DefaultRetainedMaxBytes,
		},
		Sys: Sys{Interval: DefaultSysInterval},
	}
}

// applyDefaults fills what decoding over base cannot: the default listener
// when the file writes none, each listener's omitted name, protocol,
// WebSocket path and TLS version, and every key a [[bridge]] or
// [[bridge.topic]] leaves out.
func (c *Config) applyDefaults(ix *index) {
	c.applyBridgeDefaults(ix)
	if !ix.has("listener") {
		c.Listeners = []Listener{{
			Name:     DefaultListenerName,
			Protocol: DefaultListenerProtocol,
			Bind:     DefaultListenerBind,
		}}
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if l.Protocol == "" {
			l.Protocol = DefaultListenerProtocol
		}
		if l.Name == "" {
			l.Name = l.Protocol + "://" + l.Bind
		}
		if l.Path == "" && l.WebSocket() {
			l.Path = DefaultWSPath
		}
		if l.MinTLSVersion == "" && (l.Protocol == ProtocolTLS || l.Protocol == ProtocolWSS) {
			l.MinTLSVersion = DefaultMinTLSVersion
		}
	}
}

// applyBridgeDefaults sets the keys each [[bridge]] and [[bridge.topic]]
// leaves out, as the index tells. Zero values are legitimate when written
// (qos = 0, retain = false), so a key is defaulted only when absent, never
// because its value is zero.
func (c *Config) applyBridgeDefaults(ix *index) {
	if len(c.Bridges) == 0 {
		c.Bridges = nil // "bridge = []" is no bridge, as is leaving it out
		return
	}
	for i := range c.Bridges {
		b := &c.Bridges[i]
		absent := func(key string) bool { return !ix.has(fmt.Sprintf("bridge[%d].%s", i, key)) }
		if absent("proto_ver") {
			b.ProtoVer = DefaultBridgeProtoVer
		}
		if absent("try_private") {
			b.TryPrivate = DefaultBridgeTryPrivate
		}
		if absent("client_id") {
			b.ClientID = c.Node.Name + "-bridge-" + b.Name
		}
		if absent("keepalive") {
			b.KeepAlive = DefaultBridgeKeepAlive
		}
		if absent("clean_start") {
			b.CleanStart = DefaultBridgeCleanStart
		}
		if absent("session_expiry") {
			b.SessionExpiry = DefaultBridgeSessionExpiry
		}
		if absent("connect_timeout") {
			b.ConnectTimeout = DefaultBridgeConnectTimeout
		}
		if absent("backoff_min") {
			b.BackoffMin = DefaultBridgeBackoffMin
		}
		if absent("backoff_max") {
			b.BackoffMax = DefaultBridgeBackoffMax
		}
		if absent("max_inflight") {
			b.MaxInflight = DefaultBridgeMaxInflight
		}
		if absent("outbox_max_messages") {
			b.OutboxMaxMessages = DefaultBridgeOutboxMaxMessages
		}
		if absent("outbox_max_bytes") {
			b.OutboxMaxBytes = DefaultBridgeOutboxMaxBytes
		}
		if absent("outbox_drop") {
			b.OutboxDrop = DefaultBridgeOutboxDrop
		}
		for j := range b.Topics {
			t := &b.Topics[j]
			absent := func(key string) bool { return !ix.has(fmt.Sprintf("bridge[%d].topic[%d].%s", i, j, key)) }
			if absent("direction") {
				t.Direction = DefaultBridgeTopicDirection
			}
			if absent("qos") {
				t.QoS = DefaultBridgeTopicQoS
			}
			if absent("retain") {
				t.Retain = DefaultBridgeTopicRetain
			}
		}
	}
}
