package actors

import (
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Options are the broker's limits and switches. cmd/nanoactor fills them
// from the configuration; the zero value of a field means its Default.
type Options struct {
	Node string // node name in logs

	MaxPacketSize      int           // bytes, both directions
	ConnectPacketMax   int           // bytes allowed before CONNECT is accepted
	ConnectTimeout     time.Duration // time to receive CONNECT
	ReceiveMaximum     uint16        // broker's Receive Maximum for v5 clients
	MaxInflight        int           // outbound QoS 1/2 in flight per client
	MaxQueued          int           // per-session queue, messages
	MaxQueuedBytes     int           // per-session queue, bytes
	QueueQoS0          bool          // queue QoS 0 messages for offline persistent sessions too
	MaxOutboundBytes   int           // per-connection bytes waiting for the socket
	WriteTimeout       time.Duration // a write making no progress this long closes the connection
	ProgressTimeout    time.Duration // watchdog: pending bytes and no writer progress this long closes the connection
	DisconnectSlow     bool          // past MaxOutboundBytes close the connection (0x97) instead of dropping QoS 0
	KeepaliveMax       uint16        // seconds; larger v5 client keepalives are lowered (Server Keep Alive)
	KeepaliveDefault   uint16        // seconds; nonzero replaces every v5 client's keepalive
	MaxSessionExpiry   time.Duration // cap on session expiry; 3.1.1 persistent sessions use it
	NoSessionExpiry    bool          // max_session_expiry = 0: every session ends with its connection
	TopicAliasMax      uint16        // inbound topic aliases per v5 connection
	MaxTopicLevels     int           // levels of a topic name or filter; 0 = no limit
	MaxSubscriptions   int           // per session; 0 = no limit
	RetainedMax        int           // retained messages kept; 0 = no limit
	RetainedMaxBytes   int           // retained payload bytes kept; 0 = no limit
	SysInterval        time.Duration // $SYS publish interval; 0 = never
	MaximumQoS         byte
	RetainAvailable    bool
	WildcardAvailable  bool
	SharedAvailable    bool
	SubIDAvailable     bool
	SharedRandom       bool // shared subscription strategy: random instead of round robin
	AllowEmptyClientID bool
	MaxClientIDLen     int

	// Auth decides a CONNECT's credentials. nil allows everyone.
	Auth func(clientID, username string, password []byte, remote string) bool

	Logger *slog.Logger

	// Strategies are the supervisor's policies (package supervisor builds
	// them); nil means the defaults in DefaultStrategies.
	PipeStrategy    actor.SupervisorStrategy
	SessionStrategy actor.SupervisorStrategy
	TopicStrategy   actor.SupervisorStrategy
}

// Defaults for Options fields left zero.
const (
	DefaultMaxPacketSize    = 1 << 20
	DefaultConnectPacketMax = 64 << 10
	DefaultConnectTimeout   = 10 * time.Second
	DefaultReceiveMaximum   = 1024
	DefaultMaxInflight      = 256
	DefaultMaxQueued        = 1000
	DefaultMaxQueuedBytes   = 16 << 20
	DefaultMaxOutboundBytes = 4 << 20
	DefaultWriteTimeout     = 10 * time.Second
	DefaultKeepaliveMax     = 65535
	DefaultMaxSessionExpiry = 24 * time.Hour
	DefaultTopicAliasMax    = 64
	DefaultMaxClientIDLen   = 65535
)

func (o *Options) fill() {
	if o.Node == "" {
		o.Node = "nanoactor"
	}
	setInt := func(p *int, d int) {
		if *p <= 0 {
			*p = d
		}
	}
	setInt(&o.MaxPacketSize, DefaultMaxPacketSize)
	setInt(&o.ConnectPacketMax, DefaultConnectPacketMax)
	setInt(&o.MaxInflight, DefaultMaxInflight)
	setInt(&o.MaxQueued, DefaultMaxQueued)
	setInt(&o.MaxQueuedBytes, DefaultMaxQueuedBytes)
	setInt(&o.MaxOutboundBytes, DefaultMaxOutboundBytes)
	setInt(&o.MaxClientIDLen, DefaultMaxClientIDLen)
	if o.ConnectPacketMax > o.MaxPacketSize {
		o.ConnectPacketMax = o.MaxPacketSize
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.ProgressTimeout <= 0 {
		o.ProgressTimeout = 2 * o.WriteTimeout
	}
	if o.NoSessionExpiry {
		o.MaxSessionExpiry = 0
	} else if o.MaxSessionExpiry <= 0 {
		o.MaxSessionExpiry = DefaultMaxSessionExpiry
	}
	if o.ReceiveMaximum == 0 {
		o.ReceiveMaximum = DefaultReceiveMaximum
	}
	if o.KeepaliveMax == 0 {
		o.KeepaliveMax = DefaultKeepaliveMax
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// TestOptions returns Options with every feature on, for tests.
func TestOptions() Options {
	return Options{
		MaximumQoS: 2, RetainAvailable: true, WildcardAvailable: true, SharedAvailable: true,
		SubIDAvailable: true, AllowEmptyClientID: true, TopicAliasMax: DefaultTopicAliasMax,
	}
}
