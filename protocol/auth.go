package protocol

import "fmt"

// Auth is an AUTH packet (section 3.15), v5 only: a step of extended
// authentication or re-authentication.
//
// Remaining Length 0 means Success without properties (3.15.2.1); Append
// uses that form for Success with empty Props. Otherwise the packet carries
// a reason and a property block that must include the Authentication Method
// (3.15.2.2.2: omitting it is a Protocol Error). Unlike DISCONNECT, AUTH has
// no form with a reason and no property length: 3.15.2.2.1 does not allow
// omitting it, so Remaining Length 1 is malformed.
//
// Which side may send which code (0x00 server, 0x18 both, 0x19 client) and
// whether the method matches the CONNECT's is the caller's concern. Byte
// fields of a decoded Props alias the body passed to Decode.
type Auth struct {
	Reason ReasonCode // ReasonSuccess, ReasonContinueAuthentication or ReasonReAuthenticate
	Props  Properties // Authentication Method and Data, Reason String, User Property
}

// Type returns TypeAuth.
func (a *Auth) Type() Type { return TypeAuth }

func (a *Auth) bodyLen() int {
	if a.Reason == ReasonSuccess && a.Props.Empty() {
		return 0
	}
	return 1 + a.Props.Len(TypeAuth)
}

// Len implements Packet.
func (a *Auth) Len(Version) int { return packetLen(a.bodyLen()) }

// Append implements Packet. It returns b unchanged and an error below v5,
// for a reason other than 0x00, 0x18, 0x19 [MQTT-3.15.2-1], for properties
// without an Authentication Method (3.15.2.2.2), or for properties
// Properties.Append refuses.
func (a *Auth) Append(b []byte, v Version) ([]byte, error) {
	if v < Version5 {
		// Type 15 is reserved and forbidden before v5 (3.1.1 section 2.2.1).
		return b, fmt.Errorf("encode auth: auth packet in %s: %w", v, ReasonMalformedPacket)
	}
	if !validAuthReason(a.Reason) {
		return b, fmt.Errorf("encode auth: reason %#x not an authenticate reason code: %w", byte(a.Reason), ReasonProtocolError) // [MQTT-3.15.2-1]
	}
	n := a.bodyLen()
	if n > 0 && !a.Props.Has(PropAuthMethod) {
		return b, fmt.Errorf("encode auth: no authentication method: %w", ReasonProtocolError) // 3.15.2.2.2
	}
	if err := checkRemaining("auth", n); err != nil {
		return b, err
	}
	start := len(b)
	b = appendHeader(b, TypeAuth, 0, n)
	if n > 0 {
		b = append(b, byte(a.Reason))
		var err error
		if b, err = a.Props.Append(b, TypeAuth); err != nil {
			return b[:start], fmt.Errorf("encode auth: %w", err)
		}
	}
	return b, nil
}

// Decode implements Packet. Below v5 it fails with ReasonMalformedPacket:
// type 15 is reserved in 3.1.1 (section 2.2.1) and 3.1.
func (a *Auth) Decode(_ Header, body []byte, v Version) error {
	a.Reason = ReasonSuccess
	a.Props.Reset()
	d := decoder{b: body, what: decodeName(TypeAuth)}
	if v < Version5 {
		d.fail("packet type 15 is reserved in %s: %w", v, ReasonMalformedPacket) // 3.1.1 section 2.2.1
		return d.err
	}
	if len(body) == 0 {
		return nil // Success, no properties (3.15.2.1)
	}
	a.Reason = ReasonCode(d.u8())
	if !validAuthReason(a.Reason) {
		d.fail("reason code %#x not an authenticate reason code: %w", byte(a.Reason), ReasonProtocolError) // [MQTT-3.15.2-1]
	}
	a.Props.decode(&d, TypeAuth) // the property length is not optional (3.15.2.2.1)
	if d.err == nil && !a.Props.Has(PropAuthMethod) {
		d.fail("no authentication method: %w", ReasonProtocolError) // 3.15.2.2.2
	}
	return d.done()
}

// validAuthReason reports whether r is an Authenticate Reason Code
// (3.15.2.1) [MQTT-3.15.2-1].
func validAuthReason(r ReasonCode) bool {
	return r == ReasonSuccess || r == ReasonContinueAuthentication || r == ReasonReAuthenticate
}
