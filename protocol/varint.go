package protocol

import (
	"errors"
	"fmt"
)

// ErrIncomplete reports that a buffer ends before the item being decoded:
// not an error in the stream, just a signal to read more bytes.
var ErrIncomplete = errors.New("incomplete")

// varintLen is the number of bytes of the Variable Byte Integer encoding of
// v, which must be in [0, MaxRemainingLength].
func varintLen(v int) int {
	switch {
	case v < 128:
		return 1
	case v < 16_384:
		return 2
	case v < 2_097_152:
		return 3
	default:
		return 4
	}
}

// appendVarint appends v as a Variable Byte Integer (section 1.5.5). v must
// be in [0, MaxRemainingLength].
func appendVarint(b []byte, v int) []byte {
	for {
		c := byte(v & 0x7F)
		v >>= 7
		if v > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if v == 0 {
			return b
		}
	}
}

// readVarint decodes a Variable Byte Integer at the start of b, returning
// the value and the bytes used. More than four bytes is malformed
// [MQTT-1.5.5-1]; so is a non-minimal encoding (a trailing 0x00 after a
// continuation byte), since the standard requires the minimum number of
// bytes. A buffer that ends mid-integer yields ErrIncomplete.
func readVarint(b []byte) (int, int, error) {
	v, shift := 0, 0
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, ErrIncomplete
		}
		c := b[i]
		if i > 0 && c == 0 {
			// 0x80 0x00 encodes 0 in two bytes: not the minimum. [MQTT-1.5.5-1]
			return 0, 0, fmt.Errorf("non-minimal variable byte integer: %w", ReasonMalformedPacket)
		}
		v |= int(c&0x7F) << shift
		if c&0x80 == 0 {
			return v, i + 1, nil
		}
		shift += 7
	}
	return 0, 0, fmt.Errorf("variable byte integer longer than 4 bytes: %w", ReasonMalformedPacket) // [MQTT-1.5.5-1]
}
