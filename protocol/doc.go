// Package protocol is the MQTT 3.1 / 3.1.1 / 5.0 codec of nanoactor: every
// control packet, v5 properties and reason codes, variable byte integers,
// UTF-8 and topic validation, a streaming packet reader, and the
// subscription index used to match topics.
//
// The package is pure: no goroutines, no logging, no sockets.
//
// Conventions:
//   - Each packet type has Len(v Version) int, Append(b []byte, v Version)
//     ([]byte, error) and Decode(h Header, body []byte, v Version) error.
//     Append writes exactly Len bytes (fixed header included) or returns an
//     error and b unchanged.
//   - Every []byte field of a decoded packet aliases the body passed to
//     Decode. A caller that keeps a field after reusing the buffer copies it.
//   - Errors from Decode wrap a ReasonCode (matched with errors.As) naming the
//     reason the broker must answer with: ReasonMalformedPacket,
//     ReasonProtocolError, ReasonTopicNameInvalid, ... Lines that enforce a
//     normative statement of the standard carry its [MQTT-x.y.z-n] tag.
package protocol
