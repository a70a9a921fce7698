package client

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Default ports by scheme, used when a URL names none.
const (
	DefaultPortTCP  = "1883"
	DefaultPortTLS  = "8883"
	DefaultPortWS   = "80"
	DefaultPortWSS  = "443"
	DefaultPortQUIC = "14567"
)

// Endpoint is a parsed broker URL.
type Endpoint struct {
	Scheme string // "mqtt", "mqtts", "ws", "wss" or "quic" (tcp and tls/ssl are normalised)
	Host   string // host:port, with the scheme's default port filled in
	Path   string // URL path, including the leading "/"; the ws/wss request path
}

// ParseURL parses a broker URL: mqtt:// (or tcp://), mqtts:// (or tls://,
// ssl://, mqtt+tls://), ws://, wss://, quic://. A missing port is the
// scheme's default.
func ParseURL(raw string) (Endpoint, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Endpoint{}, fmt.Errorf("parse url: %w", err)
	}
	var e Endpoint
	var port string
	switch strings.ToLower(u.Scheme) {
	case "mqtt", "tcp":
		e.Scheme, port = "mqtt", DefaultPortTCP
	case "mqtts", "tls", "ssl", "mqtt+tls":
		e.Scheme, port = "mqtts", DefaultPortTLS
	case "ws":
		e.Scheme, port = "ws", DefaultPortWS
	case "wss":
		e.Scheme, port = "wss", DefaultPortWSS
	case "quic":
		e.Scheme, port = "quic", DefaultPortQUIC
	default:
		return Endpoint{}, fmt.Errorf("parse url %q: unsupported scheme %q (want mqtt, mqtts, tls, ws, wss or quic)", raw, u.Scheme)
	}
	if u.Hostname() == "" {
		return Endpoint{}, fmt.Errorf("parse url %q: no host", raw)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	e.Host = net.JoinHostPort(u.Hostname(), port)
	e.Path = u.EscapedPath()
	return e, nil
}

// String returns the endpoint as a URL.
func (e Endpoint) String() string { return e.Scheme + "://" + e.Host + e.Path }
