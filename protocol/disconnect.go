package protocol

import "fmt"

// Disconnect is a DISCONNECT packet (section 3.14). In 3.1 and 3.1.1 it is a
// fixed header alone; Reason and Props are v5 only and ignored by Append
// below v5.
//
// In v5 the Reason Code and Property Length may be omitted: Remaining Length
// 0 means Normal disconnection without properties (3.14.2.1), and Remaining
// Length 1 a reason without properties (3.14.2.2.1). Append uses the
// shortest form: nothing for Normal disconnection without properties, the
// reason alone when there are no properties.
//
// The standard's direction rules are the caller's: 0x04 (Disconnect with
// Will Message) is sent only by clients and the server-only codes (0x8B
// Server shutting down, 0x8E Session taken over, ...) only by servers; a
// server never sends Session Expiry Interval [MQTT-3.14.2-2]; a client whose
// CONNECT had a Session Expiry Interval of 0 must not send a non-zero one
// (3.14.2.2.2, Protocol Error). Byte fields of a decoded Props alias the
// body passed to Decode.
type Disconnect struct {
	Reason ReasonCode // v5 Disconnect Reason Code (table 3.14.2.1); 0 is Normal disconnection
	Props  Properties // v5: Session Expiry Interval, Reason String, Server Reference, User Property
}

// Type returns TypeDisconnect.
func (p *Disconnect) Type() Type { return TypeDisconnect }

func (p *Disconnect) bodyLen(v Version) int {
	switch {
	case v < Version5:
		return 0
	case !p.Props.Empty():
		return 1 + p.Props.Len(TypeDisconnect)
	case p.Reason != ReasonSuccess:
		return 1
	}
	return 0
}

// Len implements Packet.
func (p *Disconnect) Len(v Version) int { return packetLen(p.bodyLen(v)) }

// Append implements Packet. In v5 it returns b unchanged and an error for a
// reason outside table 3.14.2.1 [MQTT-3.14.2-1] or properties
// Properties.Append refuses.
func (p *Disconnect) Append(b []byte, v Version) ([]byte, error) {
	if v >= Version5 && !validDisconnectReason(p.Reason) {
		return b, fmt.Errorf("encode disconnect: reason %#x not a disconnect reason code: %w", byte(p.Reason), ReasonProtocolError) // [MQTT-3.14.2-1]
	}
	n := p.bodyLen(v)
	if err := checkRemaining("disconnect", n); err != nil {
		return b, err
	}
	start := len(b)
	b = appendHeader(b, TypeDisconnect, 0, n)
	if n > 0 {
		b = append(b, byte(p.Reason))
	}
	if n > 1 {
		var err error
		if b, err = p.Props.Append(b, TypeDisconnect); err != nil {
			return b[:start], fmt.Errorf("encode disconnect: %w", err)
		}
	}
	return b, nil
}

// Decode implements Packet. A 3.1/3.1.1 DISCONNECT with a non-zero
// Remaining Length is malformed (3.1.1 sections 3.14.2, 3.14.3: no variable
// header, no payload).
func (p *Disconnect) Decode(_ Header, body []byte, v Version) error {
	p.Reason = ReasonSuccess
	d := decoder{b: body, what: decodeName(TypeDisconnect)}
	if v < Version5 {
		p.Props.Reset()
		if len(body) != 0 {
			d.fail("remaining length %d, want 0: %w", len(body), ReasonMalformedPacket) // 3.1.1 sections 3.14.2, 3.14.3
		}
		return d.err
	}
	if d.remaining() > 0 {
		p.Reason = ReasonCode(d.u8())
		if !validDisconnectReason(p.Reason) {
			d.fail("reason code %#x not a disconnect reason code: %w", byte(p.Reason), ReasonProtocolError) // [MQTT-3.14.2-1]
		}
	}
	if d.remaining() > 0 {
		p.Props.decode(&d, TypeDisconnect)
	} else {
		p.Props.Reset() // Remaining Length < 2: property length 0 (3.14.2.2.1)
	}
	return d.done()
}

// validDisconnectReason reports whether r is in the Disconnect Reason Code
// table (3.14.2.1) [MQTT-3.14.2-1].
func validDisconnectReason(r ReasonCode) bool {
	switch r {
	case ReasonSuccess, ReasonDisconnectWithWill, ReasonUnspecifiedError, ReasonMalformedPacket,
		ReasonProtocolError, ReasonImplementationSpecific, ReasonNotAuthorized, ReasonServerBusy,
		ReasonServerShuttingDown, ReasonKeepAliveTimeout, ReasonSessionTakenOver, ReasonTopicFilterInvalid,
		ReasonTopicNameInvalid, ReasonReceiveMaximumExceeded, ReasonTopicAliasInvalid, ReasonPacketTooLarge,
		ReasonMessageRateTooHigh, ReasonQuotaExceeded, ReasonAdministrativeAction, ReasonPayloadFormatInvalid,
		ReasonRetainNotSupported, ReasonQoSNotSupported, ReasonUseAnotherServer, ReasonServerMoved,
		ReasonSharedSubscriptionsNotSupported, ReasonConnectionRateExceeded, ReasonMaximumConnectTime,
		ReasonSubscriptionIdentifiersNotSupported, ReasonWildcardSubscriptionsNotSupported:
		return true
	}
	return false
}
