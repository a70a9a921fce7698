package topic

import (
	"errors"
	"fmt"
)

// MaxLen is the longest topic name or topic filter in bytes: both travel as
// a UTF-8 Encoded String whose length prefix is a uint16 [MQTT-4.7.3-3].
const MaxLen = 65535

// sharePrefix starts every shared subscription filter [MQTT-4.8.2-1].
const sharePrefix = "$share/"

// Sentinel errors. Every error returned by ValidName matches ErrInvalidName
// and every error returned by ValidFilter, ParseShared, Index.Subscribe and
// Index.Unsubscribe matches ErrInvalidFilter (errors.Is). Errors caused by
// ill-formed UTF-8 or U+0000 match ErrMalformedUTF8 as well.
var (
	// ErrInvalidName marks a topic name a PUBLISH must not carry
	// (MQTT 5 reason code 0x90 Topic Name invalid).
	ErrInvalidName = errors.New("invalid topic name")

	// ErrInvalidFilter marks a topic filter a SUBSCRIBE or UNSUBSCRIBE must
	// not carry (MQTT 5 reason code 0x8F Topic Filter invalid).
	ErrInvalidFilter = errors.New("invalid topic filter")

	// ErrMalformedUTF8 marks a string that is ill-formed UTF-8 or contains
	// U+0000. The standard makes such a packet a Malformed Packet (0x81)
	// [MQTT-1.5.4-1] [MQTT-1.5.4-2] (MQTT 3.1.1: close the connection,
	// [MQTT-1.5.3-1] [MQTT-1.5.3-2]). A codec that prefers 0x8F/0x90 still
	// gets them from ErrInvalidFilter/ErrInvalidName, which also match.
	ErrMalformedUTF8 = errors.New("malformed utf-8 string")
)

// Detailed errors. Preallocated so that validation never allocates.
var (
	errNameEmpty    = fmt.Errorf("%w: empty", ErrInvalidName)
	errNameTooLong  = fmt.Errorf("%w: longer than 65535 bytes", ErrInvalidName)
	errNameWildcard = fmt.Errorf("%w: contains wildcard '+' or '#'", ErrInvalidName)
	errNameNull     = fmt.Errorf("%w: %w: contains U+0000", ErrInvalidName, ErrMalformedUTF8)
	errNameUTF8     = fmt.Errorf("%w: %w", ErrInvalidName, ErrMalformedUTF8)

	errFilterEmpty   = fmt.Errorf("%w: empty", ErrInvalidFilter)
	errFilterTooLong = fmt.Errorf("%w: longer than 65535 bytes", ErrInvalidFilter)
	errFilterHash    = fmt.Errorf("%w: '#' is not alone in the last level", ErrInvalidFilter)
	errFilterPlus    = fmt.Errorf("%w: '+' is not alone in its level", ErrInvalidFilter)
	errFilterNull    = fmt.Errorf("%w: %w: contains U+0000", ErrInvalidFilter, ErrMalformedUTF8)
	errFilterUTF8    = fmt.Errorf("%w: %w", ErrInvalidFilter, ErrMalformedUTF8)

	errShareEmpty    = fmt.Errorf("%w: empty share name", ErrInvalidFilter)
	errShareWildcard = fmt.Errorf("%w: share name contains '+' or '#'", ErrInvalidFilter)
	errShareNoFilter = fmt.Errorf("%w: no topic filter after share name", ErrInvalidFilter)
)

// text is the type set the validators and splitters accept, so the index can
// validate string filters and the codec []byte names with the same code.
type text interface{ ~string | ~[]byte }

// ValidName reports whether name may be the topic name of a PUBLISH: nil, or
// an error matching ErrInvalidName that says why. It does not allocate and
// does not retain name.
//
// A name that starts with "$" is valid here; whether a client may publish to
// it (say $SYS) is the broker's decision.
func ValidName(name []byte) error { return validName(name) }

func validName[S text](name S) error {
	if len(name) == 0 {
		return errNameEmpty // [MQTT-4.7.3-1]
	}
	if len(name) > MaxLen {
		return errNameTooLong // [MQTT-4.7.3-3]
	}
	for i := 0; i < len(name); {
		// Fast path: eight bytes of ASCII without NUL, '+' or '#' at once.
		if i+8 <= len(name) && plainASCII(load64(name, i)) {
			i += 8
			continue
		}
		c := name[i]
		if c < 0x80 {
			switch c {
			case 0:
				return errNameNull // [MQTT-4.7.3-2] [MQTT-1.5.3-2] [MQTT-1.5.4-2]
			case '+', '#':
				return errNameWildcard // [MQTT-4.7.1-1] [MQTT-3.3.2-2]
			}
			i++
			continue
		}
		n := runeLen(name, i)
		if n == 0 {
			return errNameUTF8 // [MQTT-1.5.3-1] [MQTT-1.5.4-1]
		}
		i += n
	}
	return nil
}

const (
	ones8  = 0x0101010101010101
	highs8 = 0x8080808080808080
)

// load64 reads s[i:i+8] as a little-endian word.
func load64[S text](s S, i int) uint64 {
	_ = s[i+7]
	return uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
		uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
}

// plainASCII reports whether none of the eight bytes of w is non-ASCII, NUL,
// '+' or '#'. zero(x) is nonzero when some byte of x is zero; it can err
// only towards false, which sends the word through the exact byte loop.
func plainASCII(w uint64) bool {
	zero := func(x uint64) uint64 { return (x - ones8) &^ x & highs8 }
	return (w&highs8 | zero(w) | zero(w^('+'*ones8)) | zero(w^('#'*ones8))) == 0
}

// ValidFilter reports whether filter may be the topic filter of a SUBSCRIBE
// or UNSUBSCRIBE: nil, or an error matching ErrInvalidFilter that says why.
// A filter starting with "$share/" must be a well-formed shared subscription
// (see ParseShared); the index stores such filters as shared, so validation
// and storage agree. It does not allocate and does not retain filter.
func ValidFilter(filter []byte) error {
	_, _, _, err := parseShared(filter)
	return err
}

// ParseShared validates filter like ValidFilter and splits a shared
// subscription "$share/{group}/{inner}" [MQTT-4.8.2-1] into its share name and
// inner filter, both aliasing filter. For any other valid filter it returns
// shared == false and nil slices; "$sharefoo/x" or "$share" are ordinary
// filters. On error group and inner are nil and shared reports whether
// filter had the "$share/" prefix.
//
// The shared form is recognised whatever the protocol version; a broker that
// does not offer shared subscriptions (MQTT 5 reason 0x9E) checks shared.
func ParseShared(filter []byte) (group, inner []byte, shared bool, err error) {
	return parseShared(filter)
}

func parseShared[S text](filter S) (group, inner S, shared bool, err error) {
	if len(filter) == 0 {
		return group, inner, false, errFilterEmpty // [MQTT-4.7.3-1]
	}
	if len(filter) > MaxLen {
		return group, inner, false, errFilterTooLong // [MQTT-4.7.3-3]
	}
	if !hasSharePrefix(filter) {
		return group, inner, false, validPlainFilter(filter)
	}
	rest := filter[len(sharePrefix):]
	i := 0
	for i < len(rest) && rest[i] != '/' {
		i++
	}
	if i == 0 {
		if len(rest) == 0 {
			return group, inner, true, errShareNoFilter // "$share/" [MQTT-4.8.2-2]
		}
		return group, inner, true, errShareEmpty // "$share//x" [MQTT-4.8.2-1]
	}
	if i == len(rest) {
		return group, inner, true, errShareNoFilter // "$share/g" [MQTT-4.8.2-2]
	}
	if err := validShareName(rest[:i]); err != nil {
		return group, inner, true, err
	}
	if i+1 == len(rest) {
		return group, inner, true, errShareNoFilter // "$share/g/" [MQTT-4.8.2-2]
	}
	if err := validPlainFilter(rest[i+1:]); err != nil {
		return group, inner, true, err
	}
	return rest[:i], rest[i+1:], true, nil
}

func hasSharePrefix[S text](filter S) bool {
	if len(filter) < len(sharePrefix) {
		return false
	}
	return string(filter[:len(sharePrefix)]) == sharePrefix
}

// validShareName checks a non-empty share name (no '/' by construction).
func validShareName[S text](group S) error {
	for i := 0; i < len(group); {
		c := group[i]
		if c < 0x80 {
			switch c {
			case 0:
				return errFilterNull // [MQTT-1.5.3-2] [MQTT-1.5.4-2]
			case '+', '#':
				return errShareWildcard // [MQTT-4.8.2-2]
			}
			i++
			continue
		}
		n := runeLen(group, i)
		if n == 0 {
			return errFilterUTF8 // [MQTT-1.5.3-1] [MQTT-1.5.4-1]
		}
		i += n
	}
	return nil
}

// validPlainFilter checks a non-empty filter without share handling.
func validPlainFilter[S text](f S) error {
	if len(f) == 0 {
		return errFilterEmpty // [MQTT-4.7.3-1]
	}
	start := 0 // first byte of the current level
	for i := 0; i < len(f); {
		c := f[i]
		if c < 0x80 {
			switch c {
			case 0:
				return errFilterNull // [MQTT-4.7.3-2] [MQTT-1.5.3-2] [MQTT-1.5.4-2]
			case '/':
				start = i + 1
			case '+':
				if i != start || (i+1 < len(f) && f[i+1] != '/') {
					return errFilterPlus // [MQTT-4.7.1-3]
				}
			case '#':
				if i != start || i+1 != len(f) {
					return errFilterHash // [MQTT-4.7.1-2]
				}
			}
			i++
			continue
		}
		n := runeLen(f, i)
		if n == 0 {
			return errFilterUTF8 // [MQTT-1.5.3-1] [MQTT-1.5.4-1]
		}
		i += n
	}
	return nil
}

// runeLen returns the length of the well-formed UTF-8 sequence starting at
// s[i] (s[i] >= 0x80), or 0 if it is ill-formed: a stray continuation byte,
// an overlong form, a surrogate U+D800..U+DFFF, a code point above U+10FFFF
// or a truncated sequence (table 3-7 of Unicode, RFC 3629 section 4).
// Noncharacters such as U+FFFF are well-formed and accepted.
func runeLen[S text](s S, i int) int {
	c := s[i]
	lo, hi := byte(0x80), byte(0xBF) // range of the second byte
	var n int
	switch {
	case c >= 0xC2 && c <= 0xDF:
		n = 2
	case c == 0xE0:
		n, lo = 3, 0xA0 // no overlong 3-byte forms
	case c == 0xED:
		n, hi = 3, 0x9F // no surrogates
	case c >= 0xE1 && c <= 0xEF:
		n = 3
	case c == 0xF0:
		n, lo = 4, 0x90 // no overlong 4-byte forms
	case c >= 0xF1 && c <= 0xF3:
		n = 4
	case c == 0xF4:
		n, hi = 4, 0x8F // nothing above U+10FFFF
	default:
		return 0 // 0x80..0xC1 and 0xF5..0xFF never start a sequence
	}
	if len(s)-i < n {
		return 0
	}
	if b := s[i+1]; b < lo || b > hi {
		return 0
	}
	for j := i + 2; j < i+n; j++ {
		if b := s[j]; b < 0x80 || b > 0xBF {
			return 0
		}
	}
	return n
}

// Match reports whether the topic filter matches the topic name. It is the
// reference matcher: simple, allocation-free and linear in the input, used by
// tests and by callers that hold a single filter (for instance a retained
// message scan); the Index matches many filters at once.
//
// '+' matches exactly one level, which may be empty ("a/+" matches "a/");
// '#' matches any number of levels including none ("a/#" matches "a",
// "a/" and "a/b/c"); a filter whose first level is '+' or '#' does not
// match a name that starts with '$' [MQTT-4.7.2-1]. Levels are compared
// byte by byte, case-sensitively. filter is matched literally: pass the inner
// filter of a shared subscription (ParseShared), not "$share/...". Inputs
// are expected to be valid (ValidFilter, ValidName); for others the result
// is unspecified but Match does not panic.
func Match(filter, name []byte) bool {
	if len(name) > 0 && name[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false // [MQTT-4.7.2-1]
	}
	for {
		f, frest, fmore := cut(filter)
		if len(f) == 1 && f[0] == '#' {
			return true // [MQTT-4.7.1-2] '#' matches the parent and every level below
		}
		n, nrest, nmore := cut(name)
		if !(len(f) == 1 && f[0] == '+') && string(f) != string(n) {
			return false
		}
		switch {
		case !fmore:
			return !nmore
		case !nmore:
			// The name ended; only a trailing "/#" matches the parent level.
			return len(frest) == 1 && frest[0] == '#'
		}
		filter, name = frest, nrest
	}
}

// cut splits s at its first '/': the first level, the rest after the
// separator, and whether there was a separator. A string without '/' is one
// level; the empty string is one empty level.
func cut[S text](s S) (level, rest S, more bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, s[len(s):], false
}
