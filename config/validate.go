package config

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nanoactor/nanoactor/protocol/topic"
)

// Validate checks every value of c and the relations between them, as Parse
// leaves a Config (defaults applied). It returns nil or an Errors with every
// problem; their Key is set and their File and Line are not, since c does
// not remember where it came from (Parse fills them in). A Config built in
// Go should start from Default.
func (c *Config) Validate() error {
	v := &checker{}
	c.validateNode(v)
	c.validateLog(v)
	c.validateListeners(v)
	c.validateMQTT(v)
	c.validateBridges(v)
	if v.durationRange("sys.interval", c.Sys.Interval, 0, Duration(24*time.Hour)) &&
		c.Sys.Interval != 0 && c.Sys.Interval < Duration(time.Second) {
		v.add("sys.interval", "must be 0 (off) or at least 1s, got %s", c.Sys.Interval)
	}
	return v.errs.err()
}

func (c *Config) validateNode(v *checker) {
	v.name("node.name", c.Node.Name)
}

// name checks a node or bridge name: 1 to 64 characters of A-Z a-z 0-9 . _ -
// and reports whether it holds.
func (v *checker) name(key, name string) bool {
	switch {
	case name == "":
		v.add(key, "must not be empty")
	case len(name) > 64:
		v.add(key, "must be at most 64 characters, got %d", len(name))
	case strings.IndexFunc(name, func(r rune) bool { return !isNameRune(r) }) >= 0:
		v.add(key, "may hold only letters, digits, '.', '_' and '-', got %q", name)
	default:
		return true
	}
	return false
}

func isNameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
}

func (c *Config) validateLog(v *checker) {
	v.oneOf("log.level", c.Log.Level, LogDebug, LogInfo, LogWarn, LogError)
	v.oneOf("log.format", c.Log.Format, LogText, LogJSON)
}

func (c *Config) validateListeners(v *checker) {
	if len(c.Listeners) == 0 {
		v.add("listener", "at least one [[listener]] is required")
		return
	}
	type bound struct {
		index         int
		bind          string
		network, host string
		port          int
	}
	var bounds []bound
	names := map[string]int{}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		key := func(field string) string { return fmt.Sprintf("listener[%d].%s", i, field) }

		if l.Name == "" {
			v.add(key("name"), "must not be empty")
		} else if strings.IndexFunc(l.Name, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
			v.add(key("name"), "must not hold spaces or control characters, got %q", l.Name)
		} else if j, dup := names[l.Name]; dup {
			v.add(key("name"), "%q is already the name of listener[%d]", l.Name, j)
		} else {
			names[l.Name] = i
		}

		switch {
		case !contains(knownProtocols, l.Protocol):
			v.add(key("protocol"), "must be one of %s; got %q", strings.Join(knownProtocols, ", "), l.Protocol)
		case !SupportedProtocols[l.Protocol]:
			v.add(key("protocol"), "%q is not served by this build yet", l.Protocol)
		}

		host, port, err := splitBind(l.Bind)
		if err != nil {
			v.add(key("bind"), "%v", err)
		} else if port != 0 { // port 0 picks a free port: never a conflict
			for _, b := range bounds {
				// A wildcard host takes the port on every interface.
				if b.network == l.Network() && b.port == port && (b.host == host || isWildcard(b.host) || isWildcard(host)) {
					v.add(key("bind"), "%q is already used by listener[%d] (%q)", l.Bind, b.index, b.bind)
					break
				}
			}
			bounds = append(bounds, bound{i, l.Bind, l.Network(), host, port})
		}

		if l.MaxConnections < 0 {
			v.add(key("max_connections"), "must be 0 (unlimited) or more, got %d", l.MaxConnections)
		}

		if l.Protocol == ProtocolQUIC && l.TCPNoDelay != nil {
			v.add(key("tcp_nodelay"), "is only used by tcp, tls, ws and wss listeners, not %q (QUIC runs over UDP)", l.Protocol)
		}

		if l.WebSocket() {
			if !strings.HasPrefix(l.Path, "/") {
				v.add(key("path"), "must start with \"/\", got %q", l.Path)
			}
		} else if l.Path != "" && contains(knownProtocols, l.Protocol) {
			v.add(key("path"), "is only used by ws and wss listeners, not %q", l.Protocol)
		}

		c.validateTLS(v, i, l, key)
	}
}

func (c *Config) validateTLS(v *checker, i int, l *Listener, key func(string) string) {
	if !l.TLS() {
		if !contains(knownProtocols, l.Protocol) {
			return // the protocol error says it all
		}
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"cert_file", l.CertFile != ""},
			{"key_file", l.KeyFile != ""},
			{"ca_file", l.CAFile != ""},
			{"verify_peer", l.VerifyPeer},
			{"use_identity_as_username", l.UseIdentityAsUsername != ""},
			{"min_tls_version", l.MinTLSVersion != ""},
		} {
			if f.set {
				v.add(key(f.name), "is only used by tls, wss and quic listeners, not %q", l.Protocol)
			}
		}
		return
	}
	also := []string{key("protocol"), fmt.Sprintf("listener[%d]", i)}
	if l.CertFile == "" {
		v.addAt(key("cert_file"), also, "is required for a %q listener", l.Protocol)
	}
	if l.KeyFile == "" {
		v.addAt(key("key_file"), also, "is required for a %q listener", l.Protocol)
	}
	if l.VerifyPeer && l.CAFile == "" {
		v.addAt(key("ca_file"), []string{key("verify_peer")}, "is required when verify_peer is true: client certificates must chain to it")
	}
	if l.UseIdentityAsUsername != "" {
		if !contains([]string{IdentityCN, IdentityDN, IdentitySAN}, l.UseIdentityAsUsername) {
			v.add(key("use_identity_as_username"), `must be one of cn, dn, san, or "" (off); got %q`, l.UseIdentityAsUsername)
		} else if !l.VerifyPeer {
			v.add(key("use_identity_as_username"), "requires verify_peer = true: an unverified certificate can claim any identity")
		}
	}
	switch {
	case l.Protocol == ProtocolQUIC:
		if l.MinTLSVersion != "" && l.MinTLSVersion != "1.3" {
			v.add(key("min_tls_version"), "QUIC always uses TLS 1.3; remove the key or write \"1.3\", got %q", l.MinTLSVersion)
		}
	default:
		v.oneOf(key("min_tls_version"), l.MinTLSVersion, "1.2", "1.3")
	}
}

// splitBind parses host:port. The host may be empty (every interface), an
// IP address (IPv6 in brackets) or a host name.
func splitBind(bind string) (host string, port int, err error) {
	if bind == "" {
		return "", 0, fmt.Errorf("is required (host:port, like \"0.0.0.0:1883\")")
	}
	h, p, err := net.SplitHostPort(bind)
	if err != nil {
		return "", 0, fmt.Errorf(`must be host:port, like "0.0.0.0:1883" or "[::1]:1883", got %q`, bind)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("port must be a number from 0 to 65535, got %q", p)
	}
	if h != "" && net.ParseIP(h) == nil && !isHostName(h) {
		return "", 0, fmt.Errorf("host must be an IP address or a host name, got %q", h)
	}
	if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
		h = ip.String() // "0.0.0.0" or "::"
	}
	return strings.ToLower(h), int(n), nil
}

// isHostName reports whether h has the shape of a DNS name.
func isHostName(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

func (c *Config) validateMQTT(v *checker) {
	m := &c.MQTT
	// Relations with a value that is itself out of range are not checked:
	// they would only repeat its error.
	maxOK := v.sizeRange("mqtt.max_packet_size", m.MaxPacketSize, MinPacketSizeLimit, MaxPacketSizeLimit)
	if v.sizeRange("mqtt.connect_packet_max", m.ConnectPacketMax, MinPacketSizeLimit, MaxPacketSizeLimit) &&
		maxOK && m.ConnectPacketMax > m.MaxPacketSize {
		v.addAt("mqtt.connect_packet_max", []string{"mqtt.max_packet_size"},
			"must not exceed mqtt.max_packet_size (%d), got %d", m.MaxPacketSize, m.ConnectPacketMax)
	}
	v.durationRange("mqtt.connect_timeout", m.ConnectTimeout, Duration(time.Millisecond), Duration(time.Hour))
	v.intRange("mqtt.receive_maximum", m.ReceiveMaximum, 1, 65535)
	v.intRange("mqtt.max_inflight", m.MaxInflight, 1, 65535)
	if m.MaxQueuedMessages < 0 {
		v.add("mqtt.max_queued_messages", "must be 0 (no count limit) or more, got %d", m.MaxQueuedMessages)
	}
	if v.sizeRange("mqtt.max_queued_bytes", m.MaxQueuedBytes, 1, 1<<40) && maxOK && m.MaxQueuedBytes < m.MaxPacketSize {
		v.addAt("mqtt.max_queued_bytes", []string{"mqtt.max_packet_size"},
			"must be at least mqtt.max_packet_size (%d) so that any message can be queued, got %d", m.MaxPacketSize, m.MaxQueuedBytes)
	}
	if v.sizeRange("mqtt.max_outbound_bytes", m.MaxOutboundBytes, 1, 1<<40) && maxOK && m.MaxOutboundBytes < m.MaxPacketSize {
		v.addAt("mqtt.max_outbound_bytes", []string{"mqtt.max_packet_size"},
			"must be at least mqtt.max_packet_size (%d) so that any packet can be sent, got %d", m.MaxPacketSize, m.MaxOutboundBytes)
	}
	v.durationRange("mqtt.write_timeout", m.WriteTimeout, Duration(time.Millisecond), Duration(time.Hour))
	v.durationRange("mqtt.progress_timeout", m.ProgressTimeout, Duration(time.Millisecond), Duration(time.Hour))
	v.oneOf("mqtt.slow_client_policy", m.SlowClientPolicy, SlowClientDropQoS0, SlowClientDisconnect)
	kaMaxOK := v.intRange("mqtt.keepalive_max", m.KeepaliveMax, 1, 65535)
	if v.intRange("mqtt.keepalive_default", m.KeepaliveDefault, 0, 65535) &&
		kaMaxOK && m.KeepaliveDefault > m.KeepaliveMax {
		v.addAt("mqtt.keepalive_default", []string{"mqtt.keepalive_max"},
			"must not exceed mqtt.keepalive_max (%d), got %d", m.KeepaliveMax, m.KeepaliveDefault)
	}
	v.durationRange("mqtt.max_session_expiry", m.MaxSessionExpiry, 0, MaxSessionExpiryLimit)
	v.intRange("mqtt.topic_alias_maximum", m.TopicAliasMaximum, 0, 65535)
	v.intRange("mqtt.max_topic_levels", m.MaxTopicLevels, 1, 65535)
	v.intRange("mqtt.maximum_qos", m.MaximumQoS, 0, 2)
	v.oneOf("mqtt.shared_subscription_strategy", m.SharedSubscriptionStrategy, SharedRoundRobin, SharedRandom)
	v.intRange("mqtt.max_client_id_len", m.MaxClientIDLen, MinClientIDLenLimit, 65535)
	if m.MaxSubscriptions < 0 {
		v.add("mqtt.max_subscriptions", "must be 0 (unlimited) or more, got %d", m.MaxSubscriptions)
	}
	if m.RetainedMaxMessages < 0 {
		v.add("mqtt.retained_max_messages", "must be 0 (unlimited) or more, got %d", m.RetainedMaxMessages)
	}
	if m.RetainedMaxBytes < 0 {
		v.add("mqtt.retained_max_bytes", "must be 0 (unlimited) or more, got %d", m.RetainedMaxBytes)
	}
}

// Bounds of [[bridge]] values beyond the obvious ones.
const (
	maxBridgeConnectTimeout = Duration(5 * time.Minute)
	maxBridgeBackoff        = Duration(time.Hour)
	minBridgeOutboxBytes    = Size(1 << 10)
	maxBridgeKeepAlive      = Duration(65535 * time.Second)
)

func (c *Config) validateBridges(v *checker) {
	names := map[string]int{}
	type session struct{ scheme, hostport, clientID string }
	sessions := map[session]int{}
	for i := range c.Bridges {
		b := &c.Bridges[i]
		key := func(field string) string { return fmt.Sprintf("bridge[%d].%s", i, field) }

		if v.name(key("name"), b.Name) {
			if j, dup := names[b.Name]; dup {
				v.add(key("name"), "%q is already the name of bridge[%d]", b.Name, j)
			} else {
				names[b.Name] = i
			}
		}

		scheme, hostport, err := splitBridgeURL(b.URL)
		if err != nil {
			v.add(key("url"), "%v", err)
		}
		if b.ProtoVer != 4 && b.ProtoVer != 5 {
			v.add(key("proto_ver"), "must be 4 (MQTT 3.1.1) or 5, got %d", b.ProtoVer)
		}
		switch {
		case b.ClientID == "":
			v.add(key("client_id"), "must not be empty")
		case len(b.ClientID) > 65535:
			v.add(key("client_id"), "must be at most 65535 bytes, got %d", len(b.ClientID))
		case err == nil:
			s := session{scheme, hostport, b.ClientID}
			if j, dup := sessions[s]; dup {
				v.addAt(key("client_id"), []string{key("url")},
					"%q is also the client id of bridge[%d] to the same broker (%s://%s): each would take over the other's session",
					b.ClientID, j, scheme, hostport)
			} else {
				sessions[s] = i
			}
		}
		v.wholeSeconds(key("keepalive"), b.KeepAlive, 0, maxBridgeKeepAlive)
		v.wholeSeconds(key("session_expiry"), b.SessionExpiry, 0, MaxSessionExpiryLimit)
		v.durationRange(key("connect_timeout"), b.ConnectTimeout, Duration(time.Millisecond), maxBridgeConnectTimeout)
		minOK := v.durationRange(key("backoff_min"), b.BackoffMin, Duration(time.Millisecond), maxBridgeBackoff)
		if v.durationRange(key("backoff_max"), b.BackoffMax, Duration(time.Millisecond), maxBridgeBackoff) &&
			minOK && b.BackoffMax < b.BackoffMin {
			v.addAt(key("backoff_max"), []string{key("backoff_min")},
				"must be at least backoff_min (%s), got %s", b.BackoffMin, b.BackoffMax)
		}
		v.intRange(key("max_inflight"), b.MaxInflight, 1, 65535)
		if b.OutboxMaxMessages < 1 {
			v.add(key("outbox_max_messages"), "must be at least 1, got %d", b.OutboxMaxMessages)
		}
		if b.OutboxMaxBytes < minBridgeOutboxBytes {
			v.add(key("outbox_max_bytes"), "must be at least %d (1KiB), got %d", minBridgeOutboxBytes, b.OutboxMaxBytes)
		}
		v.oneOf(key("outbox_drop"), b.OutboxDrop, BridgeDropOldest, BridgeDropNewest)

		validateBridgeTLS(v, b, scheme, err == nil, key)

		if len(b.Topics) == 0 {
			v.addAt(key("topic"), []string{fmt.Sprintf("bridge[%d]", i)}, "at least one [[bridge.topic]] is required")
		}
		for j := range b.Topics {
			validateBridgeTopic(v, &b.Topics[j], func(field string) string {
				return fmt.Sprintf("bridge[%d].topic[%d].%s", i, j, field)
			})
		}
	}
}

func validateBridgeTLS(v *checker, b *Bridge, scheme string, urlOK bool, key func(string) string) {
	t := &b.TLS
	if urlOK && scheme == BridgeSchemeTCP {
		for _, f := range []struct {
			name string
			set  bool
		}{
			{"ca_file", t.CAFile != ""},
			{"cert_file", t.CertFile != ""},
			{"key_file", t.KeyFile != ""},
			{"server_name", t.ServerName != ""},
			{"insecure_skip_verify", t.InsecureSkipVerify},
		} {
			if f.set {
				v.add(key("tls."+f.name), "is only for %s and %s bridges, not %s", BridgeSchemeTLS, BridgeSchemeQUIC, BridgeSchemeTCP)
			}
		}
		return
	}
	if t.CertFile != "" && t.KeyFile == "" {
		v.addAt(key("tls.key_file"), []string{key("tls.cert_file")}, "is required with tls.cert_file: write both or neither")
	}
	if t.KeyFile != "" && t.CertFile == "" {
		v.addAt(key("tls.cert_file"), []string{key("tls.key_file")}, "is required with tls.key_file: write both or neither")
	}
}

func validateBridgeTopic(v *checker, t *BridgeTopic, key func(string) string) {
	patternOK := false
	if t.Pattern == "" {
		v.add(key("pattern"), "is required: a topic filter like \"sensors/#\"")
	} else if _, _, shared, err := topic.ParseShared([]byte(t.Pattern)); shared {
		v.add(key("pattern"), "must not be a shared subscription ($share/...), got %q", t.Pattern)
	} else if err != nil {
		v.add(key("pattern"), "is not a valid topic filter (%s): %q", filterProblem(err), t.Pattern)
	} else {
		patternOK = true
	}
	v.oneOf(key("direction"), t.Direction, BridgeOut, BridgeIn, BridgeBoth)
	v.intRange(key("qos"), t.QoS, 0, 2)
	for _, p := range []struct{ name, prefix string }{
		{"local_prefix", t.LocalPrefix}, {"remote_prefix", t.RemotePrefix},
	} {
		if p.prefix == "" {
			continue
		}
		if err := topic.ValidName([]byte(p.prefix)); err != nil {
			v.add(key(p.name), "must be empty or a topic name without wildcards (%s), got %q",
				strings.TrimPrefix(err.Error(), topic.ErrInvalidName.Error()+": "), p.prefix)
			continue
		}
		if !patternOK {
			continue
		}
		filter := p.prefix + t.Pattern
		if _, _, shared, err := topic.ParseShared([]byte(filter)); shared {
			v.add(key(p.name), "must not make a shared subscription ($share/...) of the pattern, got %q", filter)
		} else if err != nil {
			v.add(key(p.name), "with the pattern gives an invalid topic filter (%s): %q", filterProblem(err), filter)
		}
	}
}

// filterProblem returns what ValidFilter says is wrong, without its
// "invalid topic filter: " prefix.
func filterProblem(err error) string {
	return strings.TrimPrefix(err.Error(), topic.ErrInvalidFilter.Error()+": ")
}

// checker collects the problems Validate finds.
type checker struct{ errs Errors }

func (v *checker) add(key, format string, args ...any) {
	v.addAt(key, nil, format, args...)
}

// addAt records a problem with key; also lists keys that locate it when
// key is not written in the file.
func (v *checker) addAt(key string, also []string, format string, args ...any) {
	v.errs = append(v.errs, &Error{Key: key, Msg: fmt.Sprintf(format, args...), also: also})
}

// intRange checks lo <= n <= hi and reports whether it holds.
func (v *checker) intRange(key string, n, lo, hi int) bool {
	if n < lo || n > hi {
		v.add(key, "must be between %d and %d, got %d", lo, hi, n)
		return false
	}
	return true
}

func (v *checker) sizeRange(key string, n, lo, hi Size) bool {
	if n < lo || n > hi {
		v.add(key, "must be between %d and %d, got %d", lo, hi, n)
		return false
	}
	return true
}

func (v *checker) durationRange(key string, d, lo, hi Duration) bool {
	if d < lo || d > hi {
		v.add(key, "must be between %s and %s, got %s", lo, hi, d)
		return false
	}
	return true
}

// wholeSeconds checks lo <= d <= hi and that d is a whole number of
// seconds (it goes on the wire in seconds), and reports whether both hold.
func (v *checker) wholeSeconds(key string, d, lo, hi Duration) bool {
	if !v.durationRange(key, d, lo, hi) {
		return false
	}
	if d%Duration(time.Second) != 0 {
		v.add(key, "must be whole seconds, got %s", d)
		return false
	}
	return true
}

func (v *checker) oneOf(key, s string, allowed ...string) {
	if !contains(allowed, s) {
		v.add(key, "must be one of %s; got %q", strings.Join(allowed, ", "), s)
	}
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }

func isWildcard(host string) bool { return host == "" || host == "0.0.0.0" || host == "::" }
