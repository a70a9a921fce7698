package protocol

import "fmt"

// Ack is PUBACK, PUBREC, PUBREL or PUBCOMP (sections 3.4-3.7): a packet
// identifier and, in v5, a reason code and properties.
//
// In v5 the reason code and property length may be omitted when the reason
// is Success and there are no properties (3.4.2.1): Append omits both then,
// and omits only the properties when they are empty.
type Ack struct {
	Kind     Type // TypePuback, TypePubrec, TypePubrel or TypePubcomp
	PacketID uint16
	Reason   ReasonCode // v5 only
	Props    Properties // v5 only
}

// Type returns a.Kind.
func (a *Ack) Type() Type { return a.Kind }

func (a *Ack) flags() byte {
	if a.Kind == TypePubrel {
		return 0x02 // [MQTT-3.6.1-1]
	}
	return 0
}

func (a *Ack) bodyLen(v Version) int {
	if v < Version5 {
		return 2
	}
	if a.Props.Empty() {
		if a.Reason == ReasonSuccess {
			return 2
		}
		return 3
	}
	return 3 + a.Props.Len(a.Kind)
}

// Len implements Packet.
func (a *Ack) Len(v Version) int { return packetLen(a.bodyLen(v)) }

// Append implements Packet.
func (a *Ack) Append(b []byte, v Version) ([]byte, error) {
	switch a.Kind {
	case TypePuback, TypePubrec, TypePubrel, TypePubcomp:
	default:
		return b, fmt.Errorf("encode ack: kind %s: %w", a.Kind, ReasonProtocolError)
	}
	if a.PacketID == 0 {
		return b, fmt.Errorf("encode %s: packet identifier 0: %w", a.Kind, ReasonProtocolError) // [MQTT-2.2.1-3]
	}
	n := a.bodyLen(v)
	start := len(b)
	b = appendHeader(b, a.Kind, a.flags(), n)
	b = appendU16(b, a.PacketID)
	if v >= Version5 && n > 2 {
		b = append(b, byte(a.Reason))
		if n > 3 {
			var err error
			if b, err = a.Props.Append(b, a.Kind); err != nil {
				return b[:start], err
			}
		}
	}
	return b, nil
}

// Decode implements Packet. h.Type selects the kind.
func (a *Ack) Decode(h Header, body []byte, v Version) error {
	a.Kind = h.Type
	a.Reason = ReasonSuccess
	d := decoder{b: body, what: decodeName(h.Type)}
	a.PacketID = d.u16()
	if d.err == nil && a.PacketID == 0 {
		d.fail("packet identifier 0: %w", ReasonProtocolError) // [MQTT-2.2.1-3]
	}
	if v >= Version5 {
		if d.remaining() > 0 {
			a.Reason = ReasonCode(d.u8())
			if d.err == nil && !validAckReason(h.Type, a.Reason) {
				d.fail("reason code %#x not valid: %w", byte(a.Reason), ReasonProtocolError)
			}
		}
		if d.remaining() > 0 {
			a.Props.decode(&d, h.Type)
		} else {
			a.Props.Reset()
		}
	} else {
		a.Props.Reset()
	}
	return d.done()
}

// validAckReason reports whether r is a reason code the standard lists for
// the ack type (tables in 3.4.2.1, 3.5.2.1, 3.6.2.1, 3.7.2.1).
func validAckReason(t Type, r ReasonCode) bool {
	switch t {
	case TypePuback, TypePubrec:
		switch r {
		case ReasonSuccess, ReasonNoMatchingSubscribers, ReasonUnspecifiedError, ReasonImplementationSpecific,
			ReasonNotAuthorized, ReasonTopicNameInvalid, ReasonPacketIdentifierInUse, ReasonQuotaExceeded,
			ReasonPayloadFormatInvalid:
			return true
		}
	case TypePubrel, TypePubcomp:
		return r == ReasonSuccess || r == ReasonPacketIdentifierNotFound
	}
	return false
}
