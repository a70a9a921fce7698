package protocol

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// maxString is the largest length of a UTF-8 Encoded String or Binary Data
// field: a two-byte length prefix (sections 1.5.4, 1.5.6).
const maxString = 65_535

// decoder reads the fields of a packet body. Errors are sticky: after the
// first failure every read returns a zero value and err keeps the first
// error, so decoding code reads straight through and checks once. Byte
// slices it returns alias b.
type decoder struct {
	b   []byte
	off int
	err error
	// what names the packet for error messages ("publish", "connect").
	what string
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(d.what+": "+format, args...)
	}
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

func (d *decoder) short(n int) bool {
	if d.err != nil {
		return true
	}
	if d.remaining() < n {
		d.fail("truncated at byte %d: %w", d.off, ReasonMalformedPacket)
		return true
	}
	return false
}

func (d *decoder) u8() byte {
	if d.short(1) {
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) u16() uint16 {
	if d.short(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(d.b[d.off:])
	d.off += 2
	return v
}

func (d *decoder) u32() uint32 {
	if d.short(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(d.b[d.off:])
	d.off += 4
	return v
}

func (d *decoder) varint() int {
	if d.err != nil {
		return 0
	}
	v, n, err := readVarint(d.b[d.off:])
	if err == ErrIncomplete {
		d.fail("truncated variable byte integer: %w", ReasonMalformedPacket)
		return 0
	}
	if err != nil {
		d.fail("%w", err)
		return 0
	}
	d.off += n
	return v
}

// binary reads Binary Data: a two-byte length and that many bytes.
func (d *decoder) binary() []byte {
	n := int(d.u16())
	if d.short(n) {
		return nil
	}
	s := d.b[d.off : d.off+n : d.off+n]
	d.off += n
	return s
}

// utf8 reads a UTF-8 Encoded String and validates it [MQTT-1.5.4-1]
// [MQTT-1.5.4-2]. An invalid string is a Malformed Packet.
func (d *decoder) utf8() []byte {
	s := d.binary()
	if d.err == nil && !ValidUTF8(s) {
		d.fail("invalid utf-8 string at byte %d: %w", d.off-len(s), ReasonMalformedPacket)
		return nil
	}
	return s
}

// rest returns the unread bytes.
func (d *decoder) rest() []byte {
	if d.err != nil {
		return nil
	}
	s := d.b[d.off:len(d.b):len(d.b)]
	d.off = len(d.b)
	return s
}

// done fails if bytes are left over: a declared length that does not match
// the content is a Malformed Packet.
func (d *decoder) done() error {
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d unexpected trailing bytes: %w", len(d.b)-d.off, ReasonMalformedPacket)
	}
	return d.err
}

func appendU16(b []byte, v uint16) []byte { return append(b, byte(v>>8), byte(v)) }

func appendU32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// appendBinary appends a two-byte length and s. The caller has checked
// len(s) <= maxString (see checkString).
func appendBinary(b []byte, s []byte) []byte {
	b = appendU16(b, uint16(len(s)))
	return append(b, s...)
}

// checkString reports an error for a field too long for its two-byte length
// prefix; encoding it would silently truncate (a known bug class).
func checkString(what string, s []byte) error {
	if len(s) > maxString {
		return fmt.Errorf("encode %s: %d bytes exceeds 65535: %w", what, len(s), ReasonMalformedPacket)
	}
	return nil
}

// ValidUTF8 reports whether s is a well-formed MQTT UTF-8 string: valid
// UTF-8 with no surrogate code points (utf8.Valid rejects those and
// overlong forms) [MQTT-1.5.4-1] and no U+0000 [MQTT-1.5.4-2]. It does not
// allocate.
func ValidUTF8(s []byte) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c == 0 {
				return false // [MQTT-1.5.4-2]
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n <= 1 {
			return false // [MQTT-1.5.4-1] ill-formed or surrogate
		}
		i += n
	}
	return true
}

// checkRemaining reports an error for a packet whose Remaining Length would
// not fit the four-byte Variable Byte Integer.
func checkRemaining(what string, remaining int) error {
	if remaining > MaxRemainingLength {
		return fmt.Errorf("encode %s: remaining length %d exceeds %d: %w", what, remaining, MaxRemainingLength, ReasonPacketTooLarge)
	}
	return nil
}
