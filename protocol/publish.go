package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/nanoactor/nanoactor/protocol/topic"
)

// Publish is a PUBLISH packet (section 3.3): an Application Message sent by
// a client to the server or by the server to a client.
//
// Topic and Payload alias the buffer: after Decode they point into the body
// passed to it, so a caller that keeps them after reusing that buffer copies
// them. Props' byte fields alias it the same way.
//
// Decoding into a reused Publish does not allocate: Props keeps the backing
// arrays of its User and SubscriptionIDs slices.
type Publish struct {
	Topic    []byte // Topic Name; empty only in v5 with a Topic Alias (3.3.2.3.4)
	Payload  []byte
	QoS      byte // 0, 1 or 2
	Retain   bool
	Dup      bool
	PacketID uint16     // present on the wire only at QoS 1 and 2
	Props    Properties // v5 only
}

// Type returns TypePublish.
func (p *Publish) Type() Type { return TypePublish }

func (p *Publish) flags() byte {
	f := p.QoS << 1
	if p.Dup {
		f |= 0x08
	}
	if p.Retain {
		f |= 0x01
	}
	return f
}

// headLen is the length of the variable header: topic, packet identifier and
// (v5) properties.
func (p *Publish) headLen(v Version) int {
	n := 2 + len(p.Topic)
	if p.QoS > 0 {
		n += 2
	}
	if v >= Version5 {
		n += p.Props.Len(TypePublish)
	}
	return n
}

func (p *Publish) bodyLen(v Version) int { return p.headLen(v) + len(p.Payload) }

// Len implements Packet. For a packet too large to encode it still returns
// the sum of its parts (more than MaxRemainingLength + 5); Append refuses it.
func (p *Publish) Len(v Version) int { return packetLen(p.bodyLen(v)) }

// check validates what Append would otherwise encode wrongly. It does not
// re-validate the Topic's characters (a decoded Topic was checked by Decode;
// a broker-built one is the broker's responsibility): scanning every
// outgoing topic would tax the fan-out path.
func (p *Publish) check(v Version) error {
	if p.QoS > 2 {
		return fmt.Errorf("encode publish: qos %d: %w", p.QoS, ReasonMalformedPacket) // [MQTT-3.3.1-4]
	}
	if p.QoS == 0 && p.Dup {
		return fmt.Errorf("encode publish: dup with qos 0: %w", ReasonMalformedPacket) // [MQTT-3.3.1-2]
	}
	if p.QoS > 0 && p.PacketID == 0 {
		// v5 [MQTT-2.2.1-3] [MQTT-2.2.1-4], 3.1.1 [MQTT-2.3.1-1]
		return fmt.Errorf("encode publish: packet identifier 0 at qos %d: %w", p.QoS, ReasonProtocolError)
	}
	if err := checkString("publish topic", p.Topic); err != nil {
		return err // [MQTT-4.7.3-3]
	}
	if len(p.Topic) == 0 {
		if v < Version5 {
			return fmt.Errorf("encode publish: empty topic: %w", ReasonMalformedPacket) // [MQTT-4.7.3-1]
		}
		if !p.Props.Has(PropTopicAlias) {
			return fmt.Errorf("encode publish: empty topic without topic alias: %w", ReasonProtocolError) // 3.3.2.3.4
		}
	}
	return nil
}

// Append implements Packet. At QoS 0 PacketID is not encoded
// ([MQTT-2.2.1-2], 3.1.1 [MQTT-2.3.1-5]); for 3.1 and 3.1.1 Props is
// ignored, so a v5 message can be encoded for a 3.1.1 subscriber as is.
// Append refuses (and leaves b unchanged) QoS 3, DUP at QoS 0, packet
// identifier 0 at QoS 1 or 2, a Topic over 65535 bytes, an empty Topic
// without a Topic Alias, properties a PUBLISH may not carry, and a packet
// whose Remaining Length would exceed MaxRemainingLength.
func (p *Publish) Append(b []byte, v Version) ([]byte, error) {
	return p.append(b, v, true)
}

// AppendHeaderOnly appends everything Append would except the payload: the
// fixed header (whose Remaining Length counts the payload), the topic, the
// packet identifier and the v5 properties. That is Len(v)-len(p.Payload)
// bytes; the complete packet is those bytes followed by p.Payload.
//
// It lets a broker send one message to many subscribers without copying
// the payload per subscriber: build each subscriber's small head (its own
// packet identifier, DUP and RETAIN flags, Subscription Identifiers and
// Topic Alias) and hand the writer net.Buffers{head, p.Payload}. The
// payload is then shared by many writers and must never be modified.
// Errors are those of Append.
func (p *Publish) AppendHeaderOnly(b []byte, v Version) ([]byte, error) {
	return p.append(b, v, false)
}

func (p *Publish) append(b []byte, v Version, payload bool) ([]byte, error) {
	if err := p.check(v); err != nil {
		return b, err
	}
	n := p.bodyLen(v)
	if err := checkRemaining("publish", n); err != nil {
		return b, err
	}
	start := len(b)
	b = appendHeader(b, TypePublish, p.flags(), n)
	b = appendBinary(b, p.Topic)
	if p.QoS > 0 {
		b = appendU16(b, p.PacketID)
	}
	if v >= Version5 {
		var err error
		if b, err = p.Props.Append(b, TypePublish); err != nil {
			return b[:start], err
		}
	}
	if payload {
		b = append(b, p.Payload...)
	}
	return b, nil
}

// PacketIDOffset returns the offset of the two-byte Packet Identifier in
// the encoding Append (or AppendHeaderOnly) produces for v, counted from the
// first byte of the packet, or -1 at QoS 0, which has none.
//
// A broker delivering one message to many subscribers encodes it once per
// (QoS, version) with a placeholder identifier (any non-zero value: Append
// refuses 0), then for each subscriber copies the bytes and patches its own
// identifier with PatchPacketID(copy, off, id) — the packet's length does
// not depend on the identifier. The DUP (0x08) and RETAIN (0x01) flags live
// in the first byte and can be patched the same way. This only holds while
// everything else is identical: v5 Subscription Identifiers and Topic
// Aliases differ per subscriber, so such packets need their own encoding
// (AppendHeaderOnly keeps that cheap).
func (p *Publish) PacketIDOffset(v Version) int {
	if p.QoS == 0 {
		return -1
	}
	return 1 + varintLen(p.bodyLen(v)) + 2 + len(p.Topic)
}

// PatchPacketID writes id as the Packet Identifier at off (from
// PacketIDOffset) of an encoded PUBLISH. id must be non-zero
// ([MQTT-2.2.1-4], 3.1.1 [MQTT-2.3.1-1]); pkt must be the caller's own
// copy, never a buffer already handed to a writer.
func PatchPacketID(pkt []byte, off int, id uint16) {
	binary.BigEndian.PutUint16(pkt[off:off+2], id)
}

// Decode implements Packet. h must come from ParseHeader, which has
// validated the flags (QoS 3 and DUP at QoS 0 are malformed).
//
// Errors: a Topic Name that is ill-formed UTF-8 or contains U+0000 is a
// Malformed Packet [MQTT-3.3.2-1] [MQTT-1.5.4-1] [MQTT-1.5.4-2]; one with a
// wildcard is Topic Name invalid, 0x90 [MQTT-3.3.2-2]; an empty Topic Name
// is a Protocol Error in v5 unless a Topic Alias is present (3.3.2.3.4) and
// malformed in 3.1.1 [MQTT-4.7.3-1]; packet identifier 0 at QoS 1 or 2 is a
// Protocol Error; a Topic Alias of 0 is Topic Alias invalid, 0x94
// [MQTT-3.3.2-8]; a Response Topic with a wildcard is a Protocol Error
// [MQTT-3.3.2-14]. For 3.1.1 the broker maps the code (it closes the
// connection for all of them).
//
// Decode accepts what is valid from either side: Subscription Identifiers
// (valid from a server) and payloads that do not match their Payload Format
// Indicator (checking is optional for the receiver). A broker decoding a
// client's PUBLISH calls CheckFromClient, and ValidPayloadFormat if it
// chooses to check payloads. Whether a Topic Alias is within the negotiated
// maximum or already mapped is connection state, checked by the caller.
func (p *Publish) Decode(h Header, body []byte, v Version) error {
	d := decoder{b: body, what: decodeName(TypePublish)}
	p.QoS, p.Dup, p.Retain = h.QoS(), h.Dup(), h.Retain()
	if p.QoS == 3 {
		d.fail("qos 3: %w", ReasonMalformedPacket) // [MQTT-3.3.1-4]
		return d.err
	}
	p.Topic = d.binary()
	if d.err == nil && len(p.Topic) > 0 {
		// One pass checks UTF-8, U+0000 and wildcards.
		if err := topic.ValidName(p.Topic); err != nil {
			if errors.Is(err, topic.ErrMalformedUTF8) {
				d.fail("%v: %w", err, ReasonMalformedPacket) // [MQTT-3.3.2-1] [MQTT-1.5.4-1] [MQTT-1.5.4-2]
			} else {
				d.fail("%v: %w", err, ReasonTopicNameInvalid) // [MQTT-3.3.2-2] [MQTT-4.7.0-1] (3.1.1 [MQTT-4.7.1-1])
			}
		}
	}
	p.PacketID = 0
	if p.QoS > 0 {
		p.PacketID = d.u16()
		if d.err == nil && p.PacketID == 0 {
			// v5 [MQTT-2.2.1-3] [MQTT-2.2.1-4], 3.1.1 [MQTT-2.3.1-1]
			d.fail("packet identifier 0 at qos %d: %w", p.QoS, ReasonProtocolError)
		}
	}
	if v >= Version5 {
		p.Props.decode(&d, TypePublish)
		if d.err == nil && p.Props.Has(PropResponseTopic) && hasWildcard(p.Props.ResponseTopic) {
			d.fail("wildcard in response topic: %w", ReasonProtocolError) // [MQTT-3.3.2-14]
		}
	} else {
		p.Props.Reset()
	}
	if d.err == nil && len(p.Topic) == 0 {
		if v < Version5 {
			d.fail("empty topic name: %w", ReasonMalformedPacket) // [MQTT-4.7.3-1]
		} else if !p.Props.Has(PropTopicAlias) {
			d.fail("empty topic name without topic alias: %w", ReasonProtocolError) // 3.3.2.3.4
		}
	}
	p.Payload = d.rest()
	return d.done()
}

// CheckFromClient applies the rule that holds only for a PUBLISH sent by a
// client: it must not carry a Subscription Identifier [MQTT-3.3.4-6]. Decode
// cannot tell who sent the packet (a server's PUBLISH may carry several), so
// the broker calls this after decoding a client's PUBLISH. The error wraps
// ReasonProtocolError: the broker answers with DISCONNECT 0x82 (v5) or
// closes the connection (3.1.1, where the property cannot occur).
func (p *Publish) CheckFromClient() error {
	if len(p.Props.SubscriptionIDs) > 0 {
		return fmt.Errorf("decode publish: subscription identifier from a client: %w", ReasonProtocolError) // [MQTT-3.3.4-6]
	}
	return nil
}

// ValidPayloadFormat reports whether the payload matches its Payload Format
// Indicator: false only when the indicator is 1 (UTF-8 Encoded Character
// Data) and the payload is not well-formed UTF-8 (3.3.2.3.2; unlike a UTF-8
// Encoded String, U+0000 is allowed). The receiver MAY check this and then
// answer with PUBACK, PUBREC or DISCONNECT 0x99 Payload format invalid;
// Decode does not, since the check costs a pass over the payload.
func (p *Publish) ValidPayloadFormat() bool {
	if !p.Props.Has(PropPayloadFormat) || p.Props.PayloadFormat != 1 {
		return true
	}
	return utf8.Valid(p.Payload)
}

// hasWildcard reports whether s contains '+' or '#'. Two IndexByte calls are
// vectorised and beat a byte loop on all but tiny topics.
func hasWildcard(s []byte) bool {
	return bytes.IndexByte(s, '+') >= 0 || bytes.IndexByte(s, '#') >= 0
}
