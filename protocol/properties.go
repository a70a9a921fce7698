package protocol

import (
	"fmt"
	"math/bits"
)

// PropID is a v5 property identifier (section 2.2.2.2, table 2-4).
type PropID byte

// Property identifiers.
const (
	PropPayloadFormat        PropID = 0x01
	PropMessageExpiry        PropID = 0x02
	PropContentType          PropID = 0x03
	PropResponseTopic        PropID = 0x08
	PropCorrelationData      PropID = 0x09
	PropSubscriptionID       PropID = 0x0B
	PropSessionExpiry        PropID = 0x11
	PropAssignedClientID     PropID = 0x12
	PropServerKeepAlive      PropID = 0x13
	PropAuthMethod           PropID = 0x15
	PropAuthData             PropID = 0x16
	PropRequestProblemInfo   PropID = 0x17
	PropWillDelay            PropID = 0x18
	PropRequestResponseInfo  PropID = 0x19
	PropResponseInfo         PropID = 0x1A
	PropServerReference      PropID = 0x1C
	PropReasonString         PropID = 0x1F
	PropReceiveMaximum       PropID = 0x21
	PropTopicAliasMaximum    PropID = 0x22
	PropTopicAlias           PropID = 0x23
	PropMaximumQoS           PropID = 0x24
	PropRetainAvailable      PropID = 0x25
	PropUser                 PropID = 0x26
	PropMaximumPacketSize    PropID = 0x27
	PropWildcardSubAvailable PropID = 0x28
	PropSubIDAvailable       PropID = 0x29
	PropSharedSubAvailable   PropID = 0x2A
)

// PropsWill is the property context of the Will Properties in a CONNECT
// payload. It is the reserved packet type 0, which no packet has.
const PropsWill = TypeReserved

func bit(ids ...PropID) uint64 {
	var m uint64
	for _, id := range ids {
		m |= 1 << id
	}
	return m
}

// allowedProps is the set of properties each packet type may carry
// (table 2-4). A property outside its packet's set is a Malformed Packet
// (section 2.2.2.2).
var allowedProps = [16]uint64{
	PropsWill: bit(PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic,
		PropCorrelationData, PropWillDelay, PropUser),
	TypeConnect: bit(PropSessionExpiry, PropAuthMethod, PropAuthData, PropRequestProblemInfo,
		PropRequestResponseInfo, PropReceiveMaximum, PropTopicAliasMaximum, PropUser, PropMaximumPacketSize),
	TypeConnack: bit(PropSessionExpiry, PropAssignedClientID, PropServerKeepAlive, PropAuthMethod,
		PropAuthData, PropResponseInfo, PropServerReference, PropReasonString, PropReceiveMaximum,
		PropTopicAliasMaximum, PropMaximumQoS, PropRetainAvailable, PropUser, PropMaximumPacketSize,
		PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable),
	TypePublish: bit(PropPayloadFormat, PropMessageExpiry, PropContentType, PropResponseTopic,
		PropCorrelationData, PropSubscriptionID, PropTopicAlias, PropUser),
	TypePuback:      bit(PropReasonString, PropUser),
	TypePubrec:      bit(PropReasonString, PropUser),
	TypePubrel:      bit(PropReasonString, PropUser),
	TypePubcomp:     bit(PropReasonString, PropUser),
	TypeSubscribe:   bit(PropSubscriptionID, PropUser),
	TypeSuback:      bit(PropReasonString, PropUser),
	TypeUnsubscribe: bit(PropUser),
	TypeUnsuback:    bit(PropReasonString, PropUser),
	TypeDisconnect:  bit(PropSessionExpiry, PropServerReference, PropReasonString, PropUser),
	TypeAuth:        bit(PropAuthMethod, PropAuthData, PropReasonString, PropUser),
}

// repeatable lists the properties that may appear more than once. Every
// other property more than once is a Protocol Error (each property's
// section: "It is a Protocol Error to include X more than once"). The
// Subscription Identifier repeats only in PUBLISH (3.3.2.3.8, 3.8.2.1.2).
const repeatable = 1<<PropUser | 1<<PropSubscriptionID

// UserProperty is a v5 User Property: a UTF-8 string pair. Fields alias the
// decoded buffer.
type UserProperty struct {
	Key, Value []byte
}

// Properties holds the v5 properties of any packet. A property is present
// when its bit is set (Has, Set); the value fields are meaningful only then.
// User and SubscriptionIDs are present when non-empty. Byte-slice fields of a
// decoded Properties alias the decoded buffer.
//
// The zero value is an empty property set. Decoding into a reused value
// reuses the User and SubscriptionIDs backing arrays, so steady-state
// decoding does not allocate.
type Properties struct {
	present uint64

	PayloadFormat        byte   // 0x01: 0 unspecified bytes, 1 UTF-8
	MessageExpiry        uint32 // 0x02: seconds
	ContentType          []byte // 0x03
	ResponseTopic        []byte // 0x08
	CorrelationData      []byte // 0x09
	SubscriptionIDs      []int  // 0x0B: one in SUBSCRIBE, any number in PUBLISH
	SessionExpiry        uint32 // 0x11: seconds
	AssignedClientID     []byte // 0x12
	ServerKeepAlive      uint16 // 0x13: seconds
	AuthMethod           []byte // 0x15
	AuthData             []byte // 0x16
	RequestProblemInfo   byte   // 0x17: 0 or 1
	WillDelay            uint32 // 0x18: seconds
	RequestResponseInfo  byte   // 0x19: 0 or 1
	ResponseInfo         []byte // 0x1A
	ServerReference      []byte // 0x1C
	ReasonString         []byte // 0x1F
	ReceiveMaximum       uint16 // 0x21: never 0
	TopicAliasMaximum    uint16 // 0x22
	TopicAlias           uint16 // 0x23: never 0
	MaximumQoS           byte   // 0x24: 0 or 1
	RetainAvailable      byte   // 0x25: 0 or 1
	User                 []UserProperty
	MaximumPacketSize    uint32 // 0x27: never 0
	WildcardSubAvailable byte   // 0x28: 0 or 1
	SubIDAvailable       byte   // 0x29: 0 or 1
	SharedSubAvailable   byte   // 0x2A: 0 or 1
}

// Has reports whether property id is present.
func (p *Properties) Has(id PropID) bool {
	switch id {
	case PropUser:
		return len(p.User) > 0
	case PropSubscriptionID:
		return len(p.SubscriptionIDs) > 0
	}
	return id < 64 && p.present&(1<<id) != 0
}

// Set marks property id as present. For User and SubscriptionIDs presence
// follows the slice length and Set has no effect.
func (p *Properties) Set(id PropID) {
	if id < 64 {
		p.present |= 1 << id
	}
}

// Clear marks property id as absent (for User and SubscriptionIDs it
// truncates the slice).
func (p *Properties) Clear(id PropID) {
	switch id {
	case PropUser:
		p.User = p.User[:0]
	case PropSubscriptionID:
		p.SubscriptionIDs = p.SubscriptionIDs[:0]
	}
	if id < 64 {
		p.present &^= 1 << id
	}
}

// Reset empties p, keeping the backing arrays of User and SubscriptionIDs.
func (p *Properties) Reset() {
	u, s := p.User[:0], p.SubscriptionIDs[:0]
	*p = Properties{User: u, SubscriptionIDs: s}
}

// Empty reports whether no property is present.
func (p *Properties) Empty() bool {
	return p.present == 0 && len(p.User) == 0 && len(p.SubscriptionIDs) == 0
}

// set returns the present-property bitmask including the slice properties.
func (p *Properties) set() uint64 {
	m := p.present &^ repeatable
	if len(p.User) > 0 {
		m |= 1 << PropUser
	}
	if len(p.SubscriptionIDs) > 0 {
		m |= 1 << PropSubscriptionID
	}
	return m
}

type propKind byte

const (
	kindByte propKind = iota + 1
	kindU16
	kindU32
	kindVarint
	kindString
	kindBinary
	kindPair
)

var propKinds = [64]propKind{
	PropPayloadFormat: kindByte, PropMessageExpiry: kindU32, PropContentType: kindString,
	PropResponseTopic: kindString, PropCorrelationData: kindBinary, PropSubscriptionID: kindVarint,
	PropSessionExpiry: kindU32, PropAssignedClientID: kindString, PropServerKeepAlive: kindU16,
	PropAuthMethod: kindString, PropAuthData: kindBinary, PropRequestProblemInfo: kindByte,
	PropWillDelay: kindU32, PropRequestResponseInfo: kindByte, PropResponseInfo: kindString,
	PropServerReference: kindString, PropReasonString: kindString, PropReceiveMaximum: kindU16,
	PropTopicAliasMaximum: kindU16, PropTopicAlias: kindU16, PropMaximumQoS: kindByte,
	PropRetainAvailable: kindByte, PropUser: kindPair, PropMaximumPacketSize: kindU32,
	PropWildcardSubAvailable: kindByte, PropSubIDAvailable: kindByte, PropSharedSubAvailable: kindByte,
}

func (p *Properties) bytesField(id PropID) *[]byte {
	switch id {
	case PropContentType:
		return &p.ContentType
	case PropResponseTopic:
		return &p.ResponseTopic
	case PropCorrelationData:
		return &p.CorrelationData
	case PropAssignedClientID:
		return &p.AssignedClientID
	case PropAuthMethod:
		return &p.AuthMethod
	case PropAuthData:
		return &p.AuthData
	case PropResponseInfo:
		return &p.ResponseInfo
	case PropServerReference:
		return &p.ServerReference
	case PropReasonString:
		return &p.ReasonString
	}
	return nil
}

func (p *Properties) byteField(id PropID) *byte {
	switch id {
	case PropPayloadFormat:
		return &p.PayloadFormat
	case PropRequestProblemInfo:
		return &p.RequestProblemInfo
	case PropRequestResponseInfo:
		return &p.RequestResponseInfo
	case PropMaximumQoS:
		return &p.MaximumQoS
	case PropRetainAvailable:
		return &p.RetainAvailable
	case PropWildcardSubAvailable:
		return &p.WildcardSubAvailable
	case PropSubIDAvailable:
		return &p.SubIDAvailable
	case PropSharedSubAvailable:
		return &p.SharedSubAvailable
	}
	return nil
}

func (p *Properties) u16Field(id PropID) *uint16 {
	switch id {
	case PropServerKeepAlive:
		return &p.ServerKeepAlive
	case PropReceiveMaximum:
		return &p.ReceiveMaximum
	case PropTopicAliasMaximum:
		return &p.TopicAliasMaximum
	case PropTopicAlias:
		return &p.TopicAlias
	}
	return nil
}

func (p *Properties) u32Field(id PropID) *uint32 {
	switch id {
	case PropMessageExpiry:
		return &p.MessageExpiry
	case PropSessionExpiry:
		return &p.SessionExpiry
	case PropWillDelay:
		return &p.WillDelay
	case PropMaximumPacketSize:
		return &p.MaximumPacketSize
	}
	return nil
}

// contentLen is the length of the encoded properties of context t, without
// the leading property-length integer. Properties not allowed in t are
// ignored here; Append reports them.
func (p *Properties) contentLen(t Type) int {
	m := p.set() & allowedProps[t]
	n := 0
	for m != 0 {
		id := PropID(bits.TrailingZeros64(m))
		m &^= 1 << id
		switch propKinds[id] {
		case kindByte:
			n += 2
		case kindU16:
			n += 3
		case kindU32:
			n += 5
		case kindString, kindBinary:
			n += 3 + len(*p.bytesField(id))
		case kindVarint:
			for _, v := range p.SubscriptionIDs {
				n += 1 + varintLen(v)
			}
		case kindPair:
			for _, u := range p.User {
				n += 5 + len(u.Key) + len(u.Value)
			}
		}
	}
	return n
}

// Len is the encoded length of the property block of context t (a packet
// type or PropsWill), the property-length integer included.
func (p *Properties) Len(t Type) int {
	n := p.contentLen(t)
	return varintLen(n) + n
}

// Append appends the property block for context t: the property length and
// every present property in ascending identifier order. A present property
// that t does not allow, a value out of range (Receive Maximum 0, Topic
// Alias 0, ...) or a string over 65535 bytes is an error and b is returned
// unchanged.
func (p *Properties) Append(b []byte, t Type) ([]byte, error) {
	set := p.set()
	if extra := set &^ allowedProps[t]; extra != 0 {
		id := PropID(bits.TrailingZeros64(extra))
		return b, fmt.Errorf("encode %s properties: property %#x not allowed: %w", ctxName(t), byte(id), ReasonMalformedPacket)
	}
	if err := p.check(t, set); err != nil {
		return b, fmt.Errorf("encode %s properties: %w", ctxName(t), err)
	}
	n := p.contentLen(t)
	start := len(b)
	b = appendVarint(b, n)
	m := set
	for m != 0 {
		id := PropID(bits.TrailingZeros64(m))
		m &^= 1 << id
		switch propKinds[id] {
		case kindByte:
			b = append(b, byte(id), *p.byteField(id))
		case kindU16:
			b = appendU16(append(b, byte(id)), *p.u16Field(id))
		case kindU32:
			b = appendU32(append(b, byte(id)), *p.u32Field(id))
		case kindString, kindBinary:
			b = appendBinary(append(b, byte(id)), *p.bytesField(id))
		case kindVarint:
			for _, v := range p.SubscriptionIDs {
				b = appendVarint(append(b, byte(id)), v)
			}
		case kindPair:
			for _, u := range p.User {
				b = append(b, byte(id))
				b = appendBinary(b, u.Key)
				b = appendBinary(b, u.Value)
			}
		}
	}
	if len(b)-start != varintLen(n)+n {
		panic("protocol: property length mismatch") // a codec bug, not input
	}
	return b, nil
}

// check validates values of present properties, shared by encode and decode.
func (p *Properties) check(t Type, set uint64) error {
	m := set
	for m != 0 {
		id := PropID(bits.TrailingZeros64(m))
		m &^= 1 << id
		switch propKinds[id] {
		case kindByte:
			if v := *p.byteField(id); v > 1 {
				// Request Problem / Response Information (3.1.2.11.6-7), Maximum QoS,
				// Retain / Wildcard / Subscription Identifier / Shared Subscription
				// Available and Payload Format Indicator are 0 or 1.
				return fmt.Errorf("property %#x value %d, want 0 or 1: %w", byte(id), v, ReasonProtocolError)
			}
		case kindString, kindBinary:
			f := *p.bytesField(id)
			if len(f) > maxString {
				return fmt.Errorf("property %#x is %d bytes: %w", byte(id), len(f), ReasonMalformedPacket)
			}
		case kindVarint:
			if t == TypeSubscribe && len(p.SubscriptionIDs) > 1 {
				return fmt.Errorf("subscription identifier more than once: %w", ReasonProtocolError)
			}
			for _, v := range p.SubscriptionIDs {
				if v < 1 || v > MaxRemainingLength {
					// 3.8.2.1.2: 0 is a Protocol Error; the value is 1..268435455.
					return fmt.Errorf("subscription identifier %d out of range: %w", v, ReasonProtocolError)
				}
			}
		case kindPair:
			for _, u := range p.User {
				if len(u.Key) > maxString || len(u.Value) > maxString {
					return fmt.Errorf("user property over 65535 bytes: %w", ReasonMalformedPacket)
				}
			}
		}
	}
	if set&(1<<PropReceiveMaximum) != 0 && p.ReceiveMaximum == 0 {
		return fmt.Errorf("receive maximum 0: %w", ReasonProtocolError) // 3.1.2.11.3, 3.2.2.3.3
	}
	if set&(1<<PropMaximumPacketSize) != 0 && p.MaximumPacketSize == 0 {
		return fmt.Errorf("maximum packet size 0: %w", ReasonProtocolError) // 3.1.2.11.4, 3.2.2.3.6
	}
	if set&(1<<PropTopicAlias) != 0 && p.TopicAlias == 0 {
		return fmt.Errorf("topic alias 0: %w", ReasonTopicAliasInvalid) // [MQTT-3.3.2-8]
	}
	return nil
}

// decode reads a property block of context t from d into p (which is reset
// first, keeping its slices' backing arrays). Unknown identifiers and
// identifiers not allowed in t are Malformed Packets (section 2.2.2.2);
// a property repeated where the standard forbids it is a Protocol Error;
// strings are validated as MQTT UTF-8.
func (p *Properties) decode(d *decoder, t Type) {
	p.Reset()
	n := d.varint()
	if d.err != nil {
		return
	}
	if n > d.remaining() {
		d.fail("property length %d exceeds packet: %w", n, ReasonMalformedPacket)
		return
	}
	end := d.off + n
	sub := decoder{b: d.b[:end], off: d.off, what: d.what}
	var seen uint64
	allowed := allowedProps[t]
	for sub.err == nil && sub.off < end {
		id := PropID(sub.varint()) // identifiers are Variable Byte Integers (2.2.2.2)
		if sub.err != nil {
			break
		}
		if id >= 64 || allowed&(1<<id) == 0 {
			sub.fail("property %#x not valid in %s: %w", byte(id), ctxName(t), ReasonMalformedPacket)
			break
		}
		if seen&(1<<id) != 0 && (repeatable&(1<<id) == 0 || (id == PropSubscriptionID && t == TypeSubscribe)) {
			sub.fail("property %#x more than once: %w", byte(id), ReasonProtocolError)
			break
		}
		seen |= 1 << id
		switch propKinds[id] {
		case kindByte:
			*p.byteField(id) = sub.u8()
		case kindU16:
			*p.u16Field(id) = sub.u16()
		case kindU32:
			*p.u32Field(id) = sub.u32()
		case kindString:
			*p.bytesField(id) = sub.utf8()
		case kindBinary:
			*p.bytesField(id) = sub.binary()
		case kindVarint:
			p.SubscriptionIDs = append(p.SubscriptionIDs, sub.varint())
		case kindPair:
			k := sub.utf8()
			v := sub.utf8()
			p.User = append(p.User, UserProperty{Key: k, Value: v})
		}
	}
	if sub.err != nil {
		d.err = sub.err
		return
	}
	p.present = seen &^ repeatable
	if err := p.check(t, seen); err != nil {
		d.fail("%w", err)
		return
	}
	d.off = end
}

func ctxName(t Type) string {
	if t == PropsWill {
		return "will"
	}
	return t.String()
}
