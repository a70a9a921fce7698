// Package client is a small MQTT 3.1, 3.1.1 and 5.0 client built on the
// nanoactor codec (package protocol) and transports (package transport). It
// backs the command-line tools "nanoactor pub", "sub" and "bench".
//
// A Client is one connection: Dial opens the transport named by the URL
// (mqtt://, mqtts:// or tls://, ws://, wss://, quic://), sends CONNECT and
// waits for CONNACK. Each Client then runs one reader goroutine, which
// decodes every packet, completes the QoS handshakes and calls
// Options.OnMessage, and at most one keepalive goroutine; both exit when the
// connection closes. Writes go through one path serialized by a mutex, each
// with a write deadline, so a stalled peer fails the writer instead of
// blocking it forever. Outgoing QoS 1 and 2 messages are bounded by an
// inflight window (Options.Inflight, capped by the server's Receive Maximum).
package client
