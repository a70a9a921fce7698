package protocol

import (
	"fmt"

	"github.com/nanoactor/nanoactor/protocol/topic"
)

// Subscription is one Topic Filter of a SUBSCRIBE with its options
// (3.8.3.1). Filter aliases the decoded buffer. In 3.1 and 3.1.1 only QoS
// exists on the wire: the other options decode as zero and are not encoded.
type Subscription struct {
	Filter            []byte
	QoS               byte // Maximum QoS: 0, 1 or 2
	NoLocal           bool // v5
	RetainAsPublished bool // v5
	RetainHandling    byte // v5: 0 send at subscribe, 1 only if new, 2 never
}

// options is the Subscription Options byte (3.8.3.1); for 3.1.1 the
// Requested QoS byte (3.8.3).
func (s *Subscription) options(v Version) byte {
	o := s.QoS
	if v >= Version5 {
		if s.NoLocal {
			o |= 0x04
		}
		if s.RetainAsPublished {
			o |= 0x08
		}
		o |= s.RetainHandling << 4
	}
	return o
}

// Subscribe is a SUBSCRIBE packet (section 3.8).
//
// Decode checks the encoding: packet identifier, at least one filter, UTF-8
// filters, the options byte. It does not judge the filters' syntax
// (wildcard placement, shared subscriptions, No Local on a shared
// subscription): in v5 those are answered per filter in the SUBACK, so the
// broker calls CheckFilter for each entry of Filters.
//
// Decoding into a reused Subscribe does not allocate once Filters (and
// Props) have grown to the sizes seen.
type Subscribe struct {
	PacketID uint16
	Props    Properties // v5 only: Subscription Identifier (at most one), User Properties
	Filters  []Subscription
}

// Type returns TypeSubscribe.
func (s *Subscribe) Type() Type { return TypeSubscribe }

func (s *Subscribe) bodyLen(v Version) int {
	n := 2
	if v >= Version5 {
		n += s.Props.Len(TypeSubscribe)
	}
	for i := range s.Filters {
		n += 3 + len(s.Filters[i].Filter)
	}
	return n
}

// Len implements Packet.
func (s *Subscribe) Len(v Version) int { return packetLen(s.bodyLen(v)) }

// Append implements Packet. It refuses packet identifier 0, an empty filter
// list, a filter over 65535 bytes, QoS 3, Retain Handling 3 and a packet too
// large; for 3.1 and 3.1.1 it ignores Props and the v5-only options.
func (s *Subscribe) Append(b []byte, v Version) ([]byte, error) {
	if s.PacketID == 0 {
		return b, fmt.Errorf("encode subscribe: packet identifier 0: %w", ReasonProtocolError) // [MQTT-2.2.1-3] (3.1.1 [MQTT-2.3.1-1])
	}
	if len(s.Filters) == 0 {
		return b, fmt.Errorf("encode subscribe: no topic filter: %w", ReasonProtocolError) // [MQTT-3.8.3-2] (3.1.1 [MQTT-3.8.3-3])
	}
	for i := range s.Filters {
		f := &s.Filters[i]
		if err := checkString("subscribe filter", f.Filter); err != nil {
			return b, err
		}
		if f.QoS > 2 {
			return b, fmt.Errorf("encode subscribe: filter %d qos %d: %w", i, f.QoS, ReasonMalformedPacket)
		}
		if v >= Version5 && f.RetainHandling > 2 {
			return b, fmt.Errorf("encode subscribe: filter %d retain handling %d: %w", i, f.RetainHandling, ReasonProtocolError)
		}
	}
	n := s.bodyLen(v)
	if err := checkRemaining("subscribe", n); err != nil {
		return b, err
	}
	start := len(b)
	b = appendHeader(b, TypeSubscribe, 0x02, n) // [MQTT-3.8.1-1]
	b = appendU16(b, s.PacketID)
	if v >= Version5 {
		var err error
		if b, err = s.Props.Append(b, TypeSubscribe); err != nil {
			return b[:start], err
		}
	}
	for i := range s.Filters {
		f := &s.Filters[i]
		b = appendBinary(b, f.Filter)
		b = append(b, f.options(v))
	}
	return b, nil
}

// Decode implements Packet. Malformed: a filter that is not valid UTF-8
// [MQTT-3.8.3-1], reserved option bits (v5 [MQTT-3.8.3-5], 3.1.1
// [MQTT-3-8.3-4]), QoS 3 in 3.1.1 [MQTT-3-8.3-4]. Protocol Error: packet
// identifier 0, no filter, QoS 3 or Retain Handling 3 in v5 (3.8.3.1), more
// than one Subscription Identifier or one of 0 (3.8.2.1.2).
func (s *Subscribe) Decode(h Header, body []byte, v Version) error {
	d := decoder{b: body, what: decodeName(TypeSubscribe)}
	s.PacketID = d.u16()
	if d.err == nil && s.PacketID == 0 {
		d.fail("packet identifier 0: %w", ReasonProtocolError) // [MQTT-2.2.1-3] (3.1.1 [MQTT-2.3.1-1])
	}
	if v >= Version5 {
		s.Props.decode(&d, TypeSubscribe)
	} else {
		s.Props.Reset()
	}
	s.Filters = s.Filters[:0]
	for d.err == nil && d.remaining() > 0 {
		f := d.utf8() // [MQTT-3.8.3-1]
		o := d.u8()
		if d.err != nil {
			break
		}
		sub := Subscription{Filter: f, QoS: o & 0x03}
		if v >= Version5 {
			if o&0xC0 != 0 {
				d.fail("filter %d reserved option bits %#x: %w", len(s.Filters), o, ReasonMalformedPacket) // [MQTT-3.8.3-5]
				break
			}
			if sub.QoS == 3 {
				d.fail("filter %d maximum qos 3: %w", len(s.Filters), ReasonProtocolError) // 3.8.3.1
				break
			}
			sub.NoLocal = o&0x04 != 0
			sub.RetainAsPublished = o&0x08 != 0
			sub.RetainHandling = o >> 4 & 0x03
			if sub.RetainHandling == 3 {
				d.fail("filter %d retain handling 3: %w", len(s.Filters), ReasonProtocolError) // 3.8.3.1
				break
			}
		} else if o&0xFC != 0 || sub.QoS == 3 {
			d.fail("filter %d requested qos byte %#x: %w", len(s.Filters), o, ReasonMalformedPacket) // [MQTT-3-8.3-4]
			break
		}
		s.Filters = append(s.Filters, sub)
	}
	if d.err == nil && len(s.Filters) == 0 {
		d.fail("no topic filter: %w", ReasonProtocolError) // [MQTT-3.8.3-2] (3.1.1 [MQTT-3.8.3-3])
	}
	return d.done()
}

// CheckFilter judges one subscription of a decoded SUBSCRIBE against the
// standard's topic filter rules (through package topic) and returns
// ReasonSuccess or the code to answer with:
//
//   - 0x8F Topic Filter invalid, a SUBACK code for this filter alone: an
//     empty filter [MQTT-4.7.3-1], '#' not alone in the last level
//     [MQTT-4.7.1-1], '+' not alone in its level [MQTT-4.7.1-2] (3.1.1
//     [MQTT-4.7.1-2] [MQTT-4.7.1-3]), or a "$share/" filter without a share
//     name, with '+' or '#' in it, or without a filter after it
//     [MQTT-4.8.2-1] [MQTT-4.8.2-2];
//   - 0x82 Protocol Error: No Local on a shared subscription
//     [MQTT-3.8.3-4]. This is not a SUBACK code: the whole packet is in
//     error, and the broker sends DISCONNECT 0x82 and closes.
//
// For 3.1 and 3.1.1 an invalid filter yields 0x80 Failure, the only failure
// return code of a 3.1.1 SUBACK [MQTT-3.9.3-2] (see SubackReason).
// "$share/" is recognised whatever the version, as the subscription index
// (topic.Index) does, so what CheckFilter accepts the index stores alike.
//
// What the broker decides itself is not checked here: shared or wildcard
// subscriptions not supported (0x9E, 0xA2; topic.ParseShared tells shared
// filters apart), not authorized (0x87), quota exceeded (0x97). Map such
// codes for 3.1.1 with SubackReason.
func CheckFilter(s Subscription, v Version) ReasonCode {
	_, _, shared, err := topic.ParseShared(s.Filter)
	if err != nil {
		return SubackReason(ReasonTopicFilterInvalid, v) // [MQTT-4.7.1-1] [MQTT-4.7.1-2] [MQTT-4.7.3-1] [MQTT-4.8.2-1] [MQTT-4.8.2-2]
	}
	if shared && s.NoLocal {
		return ReasonProtocolError // [MQTT-3.8.3-4]
	}
	return ReasonSuccess
}

// SubackReason maps a v5 SUBACK reason code to the code to send to a client
// of version v: unchanged for v5; for 3.1 and 3.1.1 the granted QoS codes
// 0x00-0x02 are kept and every failure becomes 0x80 Failure, the only
// failure code 3.1.1 has [MQTT-3.9.3-2].
func SubackReason(r ReasonCode, v Version) ReasonCode {
	if v < Version5 && r.IsError() {
		return ReasonUnspecifiedError
	}
	return r
}

// Suback is a SUBACK packet (section 3.9): one reason code per filter of
// the SUBSCRIBE it answers, in order [MQTT-3.9.3-1].
type Suback struct {
	PacketID uint16
	Props    Properties // v5 only
	Reasons  []ReasonCode
}

// Type returns TypeSuback.
func (s *Suback) Type() Type { return TypeSuback }

func (s *Suback) bodyLen(v Version) int {
	n := 2 + len(s.Reasons)
	if v >= Version5 {
		n += s.Props.Len(TypeSuback)
	}
	return n
}

// Len implements Packet.
func (s *Suback) Len(v Version) int { return packetLen(s.bodyLen(v)) }

// Append implements Packet. It refuses packet identifier 0, an empty list
// and a code the version does not allow in a SUBACK [MQTT-3.9.3-2] (map
// v5 codes for 3.1.1 with SubackReason).
func (s *Suback) Append(b []byte, v Version) ([]byte, error) {
	if s.PacketID == 0 {
		return b, fmt.Errorf("encode suback: packet identifier 0: %w", ReasonProtocolError) // [MQTT-2.2.1-6] (3.1.1 [MQTT-2.3.1-7])
	}
	if len(s.Reasons) == 0 {
		return b, fmt.Errorf("encode suback: no reason code: %w", ReasonProtocolError) // [MQTT-3.8.4-6] (3.1.1 [MQTT-3.8.4-5])
	}
	for i, r := range s.Reasons {
		if !validSubackReason(r, v) {
			return b, fmt.Errorf("encode suback: reason %d %#x not valid in %s: %w", i, byte(r), v, ReasonProtocolError) // [MQTT-3.9.3-2]
		}
	}
	n := s.bodyLen(v)
	if err := checkRemaining("suback", n); err != nil {
		return b, err
	}
	start := len(b)
	b = appendHeader(b, TypeSuback, 0, n)
	b = appendU16(b, s.PacketID)
	if v >= Version5 {
		var err error
		if b, err = s.Props.Append(b, TypeSuback); err != nil {
			return b[:start], err
		}
	}
	for _, r := range s.Reasons {
		b = append(b, byte(r))
	}
	return b, nil
}

// Decode implements Packet. A code outside the version's SUBACK table
// (v5 table 3.9.3, 3.1.1: 0x00, 0x01, 0x02, 0x80 [MQTT-3.9.3-2]), an empty
// list and packet identifier 0 are Protocol Errors.
func (s *Suback) Decode(h Header, body []byte, v Version) error {
	d := decoder{b: body, what: decodeName(TypeSuback)}
	s.PacketID = d.u16()
	if d.err == nil && s.PacketID == 0 {
		d.fail("packet identifier 0: %w", ReasonProtocolError) // [MQTT-2.2.1-6] (3.1.1 [MQTT-2.3.1-7])
	}
	if v >= Version5 {
		s.Props.decode(&d, TypeSuback)
	} else {
		s.Props.Reset()
	}
	s.Reasons = s.Reasons[:0]
	for d.err == nil && d.remaining() > 0 {
		r := ReasonCode(d.u8())
		if !validSubackReason(r, v) {
			d.fail("reason %d %#x not valid: %w", len(s.Reasons), byte(r), ReasonProtocolError) // [MQTT-3.9.3-2]
			break
		}
		s.Reasons = append(s.Reasons, r)
	}
	if d.err == nil && len(s.Reasons) == 0 {
		d.fail("no reason code: %w", ReasonProtocolError) // [MQTT-3.8.4-6] (3.1.1 [MQTT-3.8.4-5])
	}
	return d.done()
}

// validSubackReason reports whether r may appear in a SUBACK of version v.
func validSubackReason(r ReasonCode, v Version) bool {
	switch r {
	case ReasonGrantedQoS0, ReasonGrantedQoS1, ReasonGrantedQoS2, ReasonUnspecifiedError:
		return true // 3.1.1 [MQTT-3.9.3-2]
	case ReasonImplementationSpecific, ReasonNotAuthorized, ReasonTopicFilterInvalid,
		ReasonPacketIdentifierInUse, ReasonQuotaExceeded, ReasonSharedSubscriptionsNotSupported,
		ReasonSubscriptionIdentifiersNotSupported, ReasonWildcardSubscriptionsNotSupported:
		return v >= Version5 // table 3.9.3 [MQTT-3.9.3-2]
	}
	return false
}
