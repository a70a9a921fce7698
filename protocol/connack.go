package protocol

import "fmt"

// Connack is a CONNACK packet (section 3.2).
//
// Reason is always a v5 reason code, whatever the version: for 3.1 and
// 3.1.1 Append writes the CONNACK return code ConnackCodeFor gives (0x84 ->
// 0x01, 0x85 -> 0x02, 0x88 -> 0x03, 0x86 -> 0x04, 0x87 -> 0x05, ...) and
// Decode maps the return code back to the first of those. So the broker
// decides one reason and encodes it for any client; a reason with no 3.1.1
// code (ConnackCodeFor reports false) cannot be encoded for 3.1/3.1.1, where
// the broker closes the connection without a CONNACK instead [MQTT-3.2.2-6].
//
// MQTT 3.1 has no Session Present flag (its byte 1 is "reserved, not used"):
// Append writes 0 there whatever SessionPresent says, and Decode ignores the
// byte and leaves SessionPresent false.
//
// Byte fields of a decoded Props alias the body passed to Decode.
type Connack struct {
	SessionPresent bool
	Reason         ReasonCode // v5 Connect Reason Code (table 3.2.2.2), also for 3.1/3.1.1
	Props          Properties // v5 only
}

// Type returns TypeConnack.
func (c *Connack) Type() Type { return TypeConnack }

func (c *Connack) bodyLen(v Version) int {
	if v < Version5 {
		return 2
	}
	return 2 + c.Props.Len(TypeConnack)
}

// Len implements Packet.
func (c *Connack) Len(v Version) int { return packetLen(c.bodyLen(v)) }

// Append implements Packet. It returns b unchanged and an error for a
// reason the version cannot carry (v5: outside table 3.2.2.2; 3.1/3.1.1: no
// return code), Session Present with a non-zero reason, or properties
// Properties.Append refuses.
func (c *Connack) Append(b []byte, v Version) ([]byte, error) {
	code := byte(c.Reason)
	if v < Version5 {
		cc, ok := ConnackCodeFor(c.Reason)
		if !ok {
			return b, fmt.Errorf("encode connack: reason %#x has no %s return code: %w", byte(c.Reason), v, ReasonProtocolError) // [MQTT-3.2.2-6]
		}
		code = byte(cc)
	} else if !validConnackReason(c.Reason) {
		return b, fmt.Errorf("encode connack: reason %#x not a connect reason code: %w", byte(c.Reason), ReasonProtocolError) // [MQTT-3.2.2-8]
	}
	if c.SessionPresent && code != 0 && v != Version31 {
		return b, fmt.Errorf("encode connack: session present with reason %#x: %w", byte(c.Reason), ReasonProtocolError) // [MQTT-3.2.2-4] (v5 [MQTT-3.2.2-6])
	}
	n := c.bodyLen(v)
	if err := checkRemaining("connack", n); err != nil {
		return b, err
	}
	start := len(b)
	b = appendHeader(b, TypeConnack, 0, n)
	var flags byte
	if c.SessionPresent && v != Version31 {
		flags = 1
	}
	b = append(b, flags, code)
	if v >= Version5 {
		var err error
		if b, err = c.Props.Append(b, TypeConnack); err != nil {
			return b[:start], fmt.Errorf("encode connack: %w", err)
		}
	}
	return b, nil
}

// Decode implements Packet. For 3.1 and 3.1.1 the return code is mapped to
// a v5 reason (see Connack); return codes 6-255 are reserved (3.1.1 section
// 3.2.2.3) and fail as a Protocol Error.
func (c *Connack) Decode(_ Header, body []byte, v Version) error {
	c.SessionPresent, c.Reason = false, ReasonSuccess
	d := decoder{b: body, what: decodeName(TypeConnack)}
	flags := d.u8()
	code := d.u8()
	if d.err != nil {
		c.Props.Reset()
		return d.err
	}
	if v != Version31 {
		if flags&^1 != 0 {
			// v5 [MQTT-3.2.2-1]; 3.1.1 section 3.2.2.1 (no numbered statement).
			d.fail("reserved acknowledge flags %#x: %w", flags, ReasonMalformedPacket)
		}
		c.SessionPresent = flags&1 != 0
	}
	if v >= Version5 {
		c.Reason = ReasonCode(code)
		if d.err == nil && !validConnackReason(c.Reason) {
			d.fail("reason code %#x not a connect reason code: %w", code, ReasonProtocolError) // [MQTT-3.2.2-8]
		}
		c.Props.decode(&d, TypeConnack)
	} else {
		c.Props.Reset()
		r, ok := reasonForConnackCode(ConnackCode(code))
		if d.err == nil && !ok {
			d.fail("reserved return code %#x: %w", code, ReasonProtocolError) // 3.1.1 section 3.2.2.3
		}
		c.Reason = r
	}
	if d.err == nil && c.SessionPresent && c.Reason != ReasonSuccess {
		d.fail("session present with reason %#x: %w", code, ReasonProtocolError) // [MQTT-3.2.2-4] (v5 [MQTT-3.2.2-6])
	}
	return d.done()
}

// reasonForConnackCode is the inverse of ConnackCodeFor: the v5 reason a
// 3.1.1 return code decodes to, false for the reserved codes 6-255.
func reasonForConnackCode(c ConnackCode) (ReasonCode, bool) {
	switch c {
	case ConnackAccepted:
		return ReasonSuccess, true
	case ConnackUnacceptableProtocolVersion:
		return ReasonUnsupportedProtocolVersion, true
	case ConnackIdentifierRejected:
		return ReasonClientIdentifierNotValid, true
	case ConnackServerUnavailable:
		return ReasonServerUnavailable, true
	case ConnackBadUsernameOrPassword:
		return ReasonBadUsernameOrPassword, true
	case ConnackNotAuthorized:
		return ReasonNotAuthorized, true
	}
	return 0, false
}

// validConnackReason reports whether r is in the Connect Reason Code table
// (3.2.2.2) [MQTT-3.2.2-8].
func validConnackReason(r ReasonCode) bool {
	switch r {
	case ReasonSuccess, ReasonUnspecifiedError, ReasonMalformedPacket, ReasonProtocolError,
		ReasonImplementationSpecific, ReasonUnsupportedProtocolVersion, ReasonClientIdentifierNotValid,
		ReasonBadUsernameOrPassword, ReasonNotAuthorized, ReasonServerUnavailable, ReasonServerBusy,
		ReasonBanned, ReasonBadAuthenticationMethod, ReasonTopicNameInvalid, ReasonPacketTooLarge,
		ReasonQuotaExceeded, ReasonPayloadFormatInvalid, ReasonRetainNotSupported, ReasonQoSNotSupported,
		ReasonUseAnotherServer, ReasonServerMoved, ReasonConnectionRateExceeded:
		return true
	}
	return false
}
