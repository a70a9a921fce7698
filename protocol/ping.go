package protocol

import "fmt"

// Pingreq is a PINGREQ packet (section 3.12): a fixed header only. The
// server answers with a Pingresp [MQTT-3.12.4-1].
type Pingreq struct{}

// Pingresp is a PINGRESP packet (section 3.13): a fixed header only.
type Pingresp struct{}

// Type returns TypePingreq.
func (*Pingreq) Type() Type { return TypePingreq }

// Len implements Packet: always 2.
func (*Pingreq) Len(Version) int { return 2 }

// Append implements Packet; it never fails.
func (*Pingreq) Append(b []byte, _ Version) ([]byte, error) {
	return append(b, byte(TypePingreq)<<4, 0), nil
}

// Decode implements Packet. PINGREQ has no variable header and no payload
// (3.12.2, 3.12.3): any body is malformed.
func (*Pingreq) Decode(_ Header, body []byte, _ Version) error {
	return decodeEmpty(TypePingreq, body)
}

// Type returns TypePingresp.
func (*Pingresp) Type() Type { return TypePingresp }

// Len implements Packet: always 2.
func (*Pingresp) Len(Version) int { return 2 }

// Append implements Packet; it never fails.
func (*Pingresp) Append(b []byte, _ Version) ([]byte, error) {
	return append(b, byte(TypePingresp)<<4, 0), nil
}

// Decode implements Packet. PINGRESP has no variable header and no payload
// (3.13.2, 3.13.3): any body is malformed.
func (*Pingresp) Decode(_ Header, body []byte, _ Version) error {
	return decodeEmpty(TypePingresp, body)
}

func decodeEmpty(t Type, body []byte) error {
	if len(body) != 0 {
		return fmt.Errorf("%s: remaining length %d, want 0: %w", decodeName(t), len(body), ReasonMalformedPacket)
	}
	return nil
}
