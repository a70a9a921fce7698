package protocol

import "fmt"

// Unsubscribe is an UNSUBSCRIBE packet (section 3.10). Filters alias the
// decoded buffer. Decode checks that each filter is UTF-8 but not its
// syntax: filters are compared character by character with the existing
// subscriptions [MQTT-3.10.4-1], so an invalid one simply matches nothing
// (a v5 broker may answer it with 0x8F in the UNSUBACK, see topic.ValidFilter).
//
// Decoding into a reused Unsubscribe does not allocate once Filters has
// grown to the sizes seen.
type Unsubscribe struct {
	PacketID uint16
	Props    Properties // v5 only: User Properties
	Filters  [][]byte
}

// Type returns TypeUnsubscribe.
func (u *Unsubscribe) Type() Type { return TypeUnsubscribe }

func (u *Unsubscribe) bodyLen(v Version) int {
	n := 2
	if v >= Version5 {
		n += u.Props.Len(TypeUnsubscribe)
	}
	for _, f := range u.Filters {
		n += 2 + len(f)
	}
	return n
}

// Len implements Packet.
func (u *Unsubscribe) Len(v Version) int { return packetLen(u.bodyLen(v)) }

// Append implements Packet. It refuses packet identifier 0, an empty filter
// list, a filter over 65535 bytes and a packet too large.
func (u *Unsubscribe) Append(b []byte, v Version) ([]byte, error) {
	if u.PacketID == 0 {
		return b, fmt.Errorf("encode unsubscribe: packet identifier 0: %w", ReasonProtocolError) // [MQTT-2.2.1-3] (3.1.1 [MQTT-2.3.1-1])
	}
	if len(u.Filters) == 0 {
		return b, fmt.Errorf("encode unsubscribe: no topic filter: %w", ReasonProtocolError) // [MQTT-3.10.3-2]
	}
	for _, f := range u.Filters {
		if err := checkString("unsubscribe filter", f); err != nil {
			return b, err
		}
	}
	n := u.bodyLen(v)
	if err := checkRemaining("unsubscribe", n); err != nil {
		return b, err
	}
	start := len(b)
	b = appendHeader(b, TypeUnsubscribe, 0x02, n) // [MQTT-3.10.1-1]
	b = appendU16(b, u.PacketID)
	if v >= Version5 {
		var err error
		if b, err = u.Props.Append(b, TypeUnsubscribe); err != nil {
			return b[:start], err
		}
	}
	for _, f := range u.Filters {
		b = appendBinary(b, f)
	}
	return b, nil
}

// Decode implements Packet. A filter that is not valid UTF-8 is malformed
// [MQTT-3.10.3-1]; no filter at all and packet identifier 0 are Protocol
// Errors.
func (u *Unsubscribe) Decode(h Header, body []byte, v Version) error {
	d := decoder{b: body, what: decodeName(TypeUnsubscribe)}
	u.PacketID = d.u16()
	if d.err == nil && u.PacketID == 0 {
		d.fail("packet identifier 0: %w", ReasonProtocolError) // [MQTT-2.2.1-3] (3.1.1 [MQTT-2.3.1-1])
	}
	if v >= Version5 {
		u.Props.decode(&d, TypeUnsubscribe)
	} else {
		u.Props.Reset()
	}
	u.Filters = u.Filters[:0]
	for d.err == nil && d.remaining() > 0 {
		f := d.utf8() // [MQTT-3.10.3-1]
		if d.err != nil {
			break
		}
		u.Filters = append(u.Filters, f)
	}
	if d.err == nil && len(u.Filters) == 0 {
		d.fail("no topic filter: %w", ReasonProtocolError) // [MQTT-3.10.3-2]
	}
	return d.done()
}

// Unsuback is an UNSUBACK packet (section 3.11). In 3.1 and 3.1.1 it is
// only a packet identifier: Props and Reasons are not encoded and decode
// empty. In v5 it carries one reason code per filter of the UNSUBSCRIBE, in
// order [MQTT-3.11.3-1].
type Unsuback struct {
	PacketID uint16
	Props    Properties   // v5 only
	Reasons  []ReasonCode // v5 only
}

// Type returns TypeUnsuback.
func (u *Unsuback) Type() Type { return TypeUnsuback }

func (u *Unsuback) bodyLen(v Version) int {
	if v < Version5 {
		return 2
	}
	return 2 + u.Props.Len(TypeUnsuback) + len(u.Reasons)
}

// Len implements Packet.
func (u *Unsuback) Len(v Version) int { return packetLen(u.bodyLen(v)) }

// Append implements Packet. It refuses packet identifier 0 and, in v5, an
// empty list or a code outside table 3.11.3 [MQTT-3.11.3-2].
func (u *Unsuback) Append(b []byte, v Version) ([]byte, error) {
	if u.PacketID == 0 {
		return b, fmt.Errorf("encode unsuback: packet identifier 0: %w", ReasonProtocolError) // [MQTT-2.2.1-6] (3.1.1 [MQTT-2.3.1-7])
	}
	if v >= Version5 {
		if len(u.Reasons) == 0 {
			return b, fmt.Errorf("encode unsuback: no reason code: %w", ReasonProtocolError) // 3.11.3
		}
		for i, r := range u.Reasons {
			if !validUnsubackReason(r) {
				return b, fmt.Errorf("encode unsuback: reason %d %#x not valid: %w", i, byte(r), ReasonProtocolError) // [MQTT-3.11.3-2]
			}
		}
	}
	n := u.bodyLen(v)
	if err := checkRemaining("unsuback", n); err != nil {
		return b, err
	}
	start := len(b)
	b = appendHeader(b, TypeUnsuback, 0, n)
	b = appendU16(b, u.PacketID)
	if v >= Version5 {
		var err error
		if b, err = u.Props.Append(b, TypeUnsuback); err != nil {
			return b[:start], err
		}
		for _, r := range u.Reasons {
			b = append(b, byte(r))
		}
	}
	return b, nil
}

// Decode implements Packet. In 3.1.1 anything after the packet identifier
// is malformed (3.11: Remaining Length 2). In v5 a code outside table
// 3.11.3, an empty list and packet identifier 0 are Protocol Errors.
func (u *Unsuback) Decode(h Header, body []byte, v Version) error {
	d := decoder{b: body, what: decodeName(TypeUnsuback)}
	u.PacketID = d.u16()
	if d.err == nil && u.PacketID == 0 {
		d.fail("packet identifier 0: %w", ReasonProtocolError) // [MQTT-2.2.1-6] (3.1.1 [MQTT-2.3.1-7])
	}
	u.Reasons = u.Reasons[:0]
	if v < Version5 {
		u.Props.Reset()
		return d.done()
	}
	u.Props.decode(&d, TypeUnsuback)
	for d.err == nil && d.remaining() > 0 {
		r := ReasonCode(d.u8())
		if !validUnsubackReason(r) {
			d.fail("reason %d %#x not valid: %w", len(u.Reasons), byte(r), ReasonProtocolError) // [MQTT-3.11.3-2]
			break
		}
		u.Reasons = append(u.Reasons, r)
	}
	if d.err == nil && len(u.Reasons) == 0 {
		d.fail("no reason code: %w", ReasonProtocolError) // 3.11.3
	}
	return d.done()
}

// validUnsubackReason reports whether r is in table 3.11.3 (v5 UNSUBACK).
func validUnsubackReason(r ReasonCode) bool {
	switch r {
	case ReasonSuccess, ReasonNoSubscriptionExisted, ReasonUnspecifiedError, ReasonImplementationSpecific,
		ReasonNotAuthorized, ReasonTopicFilterInvalid, ReasonPacketIdentifierInUse:
		return true
	}
	return false
}
