package protocol

import "fmt"

// Version is the protocol level byte of CONNECT.
type Version byte

// Protocol levels.
const (
	Version31  Version = 3 // MQTT 3.1, protocol name "MQIsdp"
	Version311 Version = 4 // MQTT 3.1.1
	Version5   Version = 5 // MQTT 5.0
)

func (v Version) String() string {
	switch v {
	case Version31:
		return "3.1"
	case Version311:
		return "3.1.1"
	case Version5:
		return "5.0"
	}
	return fmt.Sprintf("level %d", byte(v))
}

// Type is the MQTT control packet type, the high nibble of the first byte.
type Type byte

// Control packet types (section 2.1.2).
const (
	TypeReserved    Type = 0
	TypeConnect     Type = 1
	TypeConnack     Type = 2
	TypePublish     Type = 3
	TypePuback      Type = 4
	TypePubrec      Type = 5
	TypePubrel      Type = 6
	TypePubcomp     Type = 7
	TypeSubscribe   Type = 8
	TypeSuback      Type = 9
	TypeUnsubscribe Type = 10
	TypeUnsuback    Type = 11
	TypePingreq     Type = 12
	TypePingresp    Type = 13
	TypeDisconnect  Type = 14
	TypeAuth        Type = 15
)

var typeNames = [16]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
	"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}

func (t Type) String() string {
	if t < 16 {
		return typeNames[t]
	}
	return fmt.Sprintf("type %d", byte(t))
}

// MaxRemainingLength is the largest value a four-byte Variable Byte Integer
// holds (section 1.5.5), hence the largest Remaining Length.
const MaxRemainingLength = 268_435_455

// Header is a decoded fixed header.
type Header struct {
	Type      Type
	Flags     byte // the low four bits of the first byte
	Remaining int  // Remaining Length: bytes after the fixed header
}

// QoS of a PUBLISH header (bits 1-2).
func (h Header) QoS() byte { return (h.Flags >> 1) & 3 }

// Dup flag of a PUBLISH header (bit 3).
func (h Header) Dup() bool { return h.Flags&0x08 != 0 }

// Retain flag of a PUBLISH header (bit 0).
func (h Header) Retain() bool { return h.Flags&0x01 != 0 }

// Len is the encoded size of the fixed header.
func (h Header) Len() int { return 1 + varintLen(h.Remaining) }

// FirstByte is the encoded first byte.
func (h Header) FirstByte() byte { return byte(h.Type)<<4 | h.Flags&0x0F }

// Validate checks the fixed header flag bits for the packet type
// [MQTT-2.1.3-1] (3.1.1: [MQTT-2.2.2-1], [MQTT-2.2.2-2]) and the PUBLISH QoS
// [MQTT-3.3.1-4]. Both are Malformed Packets.
func (h Header) Validate() error {
	switch h.Type {
	case TypeReserved:
		return fmt.Errorf("reserved packet type 0: %w", ReasonMalformedPacket) // [MQTT-2.1.2-1] reserved type
	case TypePublish:
		if h.QoS() == 3 {
			return fmt.Errorf("publish qos 3: %w", ReasonMalformedPacket) // [MQTT-3.3.1-4]
		}
		if h.QoS() == 0 && h.Dup() {
			return fmt.Errorf("publish dup with qos 0: %w", ReasonMalformedPacket) // [MQTT-3.3.1-2]
		}
	case TypePubrel, TypeSubscribe, TypeUnsubscribe:
		if h.Flags != 0x02 {
			return fmt.Errorf("%s flags %#x, want 0x2: %w", h.Type, h.Flags, ReasonMalformedPacket) // [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1]
		}
	default:
		if h.Flags != 0 {
			return fmt.Errorf("%s flags %#x, want 0: %w", h.Type, h.Flags, ReasonMalformedPacket) // [MQTT-2.1.3-1]
		}
	}
	return nil
}

// AppendHeader appends a fixed header. remaining must be in
// [0, MaxRemainingLength]; callers check that first.
func appendHeader(b []byte, t Type, flags byte, remaining int) []byte {
	b = append(b, byte(t)<<4|flags&0x0F)
	return appendVarint(b, remaining)
}

// ParseHeader decodes a fixed header at the start of b. It returns the
// header, the number of bytes it used, and an error: ErrIncomplete when b
// holds only part of a header (read more and try again), or a wrapped
// ReasonMalformedPacket for a Remaining Length longer than four bytes
// [MQTT-1.5.5-1] or bad flag bits. The body is not examined.
func ParseHeader(b []byte) (Header, int, error) {
	if len(b) < 2 {
		return Header{}, 0, ErrIncomplete
	}
	h := Header{Type: Type(b[0] >> 4), Flags: b[0] & 0x0F}
	rem, n, err := readVarint(b[1:])
	if err != nil {
		return Header{}, 0, err
	}
	h.Remaining = rem
	if err := h.Validate(); err != nil {
		return Header{}, 0, err
	}
	return h, 1 + n, nil
}
