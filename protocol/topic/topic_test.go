package topic

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// UTF-8 fixtures shared by the name and filter tables.
var (
	utf8Valid = []struct{ name, s string }{
		{"2-byte U+0080", "\xC2\x80"},
		{"2-byte U+07FF", "\xDF\xBF"},
		{"3-byte U+0800", "\xE0\xA0\x80"},
		{"3-byte U+D7FF below surrogates", "\xED\x9F\xBF"},
		{"3-byte U+E000 above surrogates", "\xEE\x80\x80"},
		{"BOM U+FEFF kept", "\xEF\xBB\xBF"},
		{"noncharacter U+FFFF allowed", "\xEF\xBF\xBF"},
		{"4-byte U+10000", "\xF0\x90\x80\x80"},
		{"4-byte U+10FFFF", "\xF4\x8F\xBF\xBF"},
		{"control U+0001", "\x01"},
		{"DEL U+007F", "\x7F"},
		{"mixed", "d\xC3\xA9j\xC3\xA0/\xE6\x97\xA5\xE6\x9C\xAC"},
	}
	utf8Invalid = []struct{ name, s string }{
		{"U+0000", "a\x00b"},
		{"overlong U+0000 C0 80", "\xC0\x80"},
		{"overlong C1 BF", "\xC1\xBF"},
		{"overlong 3-byte E0 80 80", "\xE0\x80\x80"},
		{"overlong 3-byte E0 9F BF", "\xE0\x9F\xBF"},
		{"overlong 4-byte F0 80 80 80", "\xF0\x80\x80\x80"},
		{"overlong 4-byte F0 8F BF BF", "\xF0\x8F\xBF\xBF"},
		{"surrogate U+D800 ED A0 80", "\xED\xA0\x80"},
		{"surrogate U+DBFF", "\xED\xAF\xBF"},
		{"surrogate U+DC00", "\xED\xB0\x80"},
		{"surrogate U+DFFF", "\xED\xBF\xBF"},
		{"surrogate pair (CESU-8)", "\xED\xA0\xBD\xED\xB8\x80"},
		{"above U+10FFFF F4 90 80 80", "\xF4\x90\x80\x80"},
		{"F5 lead", "\xF5\x80\x80\x80"},
		{"FF byte", "\xFF"},
		{"lone continuation", "a\x80"},
		{"truncated 2-byte", "\xC2"},
		{"truncated 3-byte", "\xE2\x82"},
		{"truncated 4-byte", "\xF0\x9F\x98"},
		{"bad continuation", "\xC2\x41"},
		{"bad third byte", "\xE2\x82\x41"},
		{"continuation is '/'", "\xC2/"},
	}
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error // nil, or the detailed error
	}{
		{"one level", "a", nil},
		{"levels", "a/b/c", nil},
		{"separator only", "/", nil},
		{"empty levels", "a//b/", nil},
		{"dollar", "$SYS/broker/load", nil},
		{"share prefix is just a name", "$share/g/a", nil},
		{"space", "a b/ c", nil},
		{"max length", strings.Repeat("a", MaxLen), nil},
		{"empty", "", errNameEmpty},
		{"too long", strings.Repeat("a", MaxLen+1), errNameTooLong},
		{"plus level", "a/+", errNameWildcard},
		{"plus inside", "a+b", errNameWildcard},
		{"hash level", "a/#", errNameWildcard},
		{"hash inside", "a#", errNameWildcard},
	}
	for _, u := range utf8Valid {
		tests = append(tests, struct {
			name string
			in   string
			want error
		}{u.name, "x/" + u.s, nil})
	}
	for _, u := range utf8Invalid {
		want := errNameUTF8
		if strings.Contains(u.s, "\x00") {
			want = errNameNull
		}
		tests = append(tests, struct {
			name string
			in   string
			want error
		}{u.name, "x/" + u.s, want})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidName([]byte(tt.in))
			if err != tt.want {
				t.Fatalf("ValidName(%q) = %v, want %v", tt.in, err, tt.want)
			}
			if err != nil && !errors.Is(err, ErrInvalidName) {
				t.Errorf("error %v does not match ErrInvalidName", err)
			}
			if errors.Is(err, ErrInvalidFilter) {
				t.Errorf("name error %v matches ErrInvalidFilter", err)
			}
			if got := validName(tt.in); got != err {
				t.Errorf("string form = %v, []byte form = %v", got, err)
			}
		})
	}
}

func TestMalformedUTF8Is(t *testing.T) {
	for _, u := range utf8Invalid {
		if err := ValidName([]byte(u.s)); !errors.Is(err, ErrMalformedUTF8) {
			t.Errorf("ValidName(%s) = %v, want ErrMalformedUTF8", u.name, err)
		}
		if err := ValidFilter([]byte(u.s)); !errors.Is(err, ErrMalformedUTF8) || !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("ValidFilter(%s) = %v, want ErrMalformedUTF8 and ErrInvalidFilter", u.name, err)
		}
		if err := ValidFilter([]byte("$share/" + u.s + "/a")); !errors.Is(err, ErrMalformedUTF8) {
			t.Errorf("ValidFilter(share name %s) = %v, want ErrMalformedUTF8", u.name, err)
		}
	}
	for _, err := range []error{errNameEmpty, errNameWildcard, errFilterHash, errShareEmpty} {
		if errors.Is(err, ErrMalformedUTF8) {
			t.Errorf("%v matches ErrMalformedUTF8", err)
		}
	}
}

func TestValidFilter(t *testing.T) {
	tests := []struct {
		in   string
		want error
	}{
		{"a", nil},
		{"a/b/c", nil},
		{"#", nil},
		{"+", nil},
		{"a/#", nil},
		{"a/+/b", nil},
		{"+/+/#", nil},
		{"/+", nil},
		{"+/", nil},
		{"/", nil},
		{"//", nil},
		{"/#", nil},
		{"$SYS/#", nil},
		{"$share", nil},
		{"$sharefoo/x", nil},
		{"$SHARE/g/x", nil}, // the prefix is case-sensitive
		{"$share/g/a", nil},
		{"$share/g/#", nil},
		{"$share/g/+/b", nil},
		{"$share/g//", nil},
		{"$share/\xC3\xA9/a", nil},
		{strings.Repeat("a", MaxLen), nil},
		{"", errFilterEmpty},
		{strings.Repeat("a", MaxLen+1), errFilterTooLong},
		{"a#", errFilterHash},
		{"#a", errFilterHash},
		{"a/#/b", errFilterHash},
		{"#/", errFilterHash},
		{"a/b#", errFilterHash},
		{"##", errFilterHash},
		{"a+", errFilterPlus},
		{"+a", errFilterPlus},
		{"++", errFilterPlus},
		{"a/+b", errFilterPlus},
		{"a/b+/c", errFilterPlus},
		{"+#", errFilterPlus},
		{"a\x00", errFilterNull},
		{"\xED\xA0\x80", errFilterUTF8},
		{"$share/", errShareNoFilter},
		{"$share/g", errShareNoFilter},
		{"$share/g/", errShareNoFilter},
		{"$share//x", errShareEmpty},
		{"$share//", errShareEmpty},
		{"$share/g+/x", errShareWildcard},
		{"$share/+/x", errShareWildcard},
		{"$share/#/x", errShareWildcard},
		{"$share/g#/x", errShareWildcard},
		{"$share/\x00/x", errFilterNull},
		{"$share/g/a#", errFilterHash},
		{"$share/g/a+", errFilterPlus},
		{"$share/g/\xC0\x80", errFilterUTF8}, // overlong NUL is ill-formed, not U+0000
	}
	for _, tt := range tests {
		err := ValidFilter([]byte(tt.in))
		if err != tt.want {
			t.Errorf("ValidFilter(%q) = %v, want %v", tt.in, err, tt.want)
		}
		if err != nil && !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("ValidFilter(%q): %v does not match ErrInvalidFilter", tt.in, err)
		}
		if _, _, _, got := parseShared(tt.in); got != err {
			t.Errorf("string form of %q = %v, []byte form = %v", tt.in, got, err)
		}
	}
	for _, u := range utf8Valid {
		if err := ValidFilter([]byte("+/" + u.s + "/#")); err != nil {
			t.Errorf("ValidFilter(%s) = %v", u.name, err)
		}
	}
}

func TestParseShared(t *testing.T) {
	tests := []struct {
		in           string
		group, inner string
		shared, ok   bool
	}{
		{"$share/g/a/b", "g", "a/b", true, true},
		{"$share/group-1/#", "group-1", "#", true, true},
		{"$share/g/+", "g", "+", true, true},
		{"$share/g//", "g", "/", true, true},
		{"$share/g/$share/h/x", "g", "$share/h/x", true, true},
		{"$share/g/$share/h", "g", "$share/h", true, true}, // inner is matched literally
		{"a/b", "", "", false, true},
		{"$sharefoo/g/x", "", "", false, true},
		{"$share", "", "", false, true},
		{"$share/g", "", "", true, false},
		{"$share//x", "", "", true, false},
		{"$share/g+/x", "", "", true, false},
		{"$share/g/a#", "", "", true, false},
		{"a+", "", "", false, false},
	}
	for _, tt := range tests {
		group, inner, shared, err := ParseShared([]byte(tt.in))
		if string(group) != tt.group || string(inner) != tt.inner || shared != tt.shared || (err == nil) != tt.ok {
			t.Errorf("ParseShared(%q) = %q, %q, %v, %v; want %q, %q, %v, ok=%v",
				tt.in, group, inner, shared, err, tt.group, tt.inner, tt.shared, tt.ok)
		}
		if err == nil && !tt.shared && (group != nil || inner != nil) {
			t.Errorf("ParseShared(%q) returned non-nil slices for a plain filter", tt.in)
		}
	}
}

// matchTests are shared by the reference matcher and the index tests.
var matchTests = []struct {
	filter, name string
	want         bool
}{
	{"a/b", "a/b", true},
	{"a/b", "a/c", false},
	{"a/b", "a/b/", false},
	{"a/b/", "a/b", false},
	{"a/b", "a", false},
	{"A/b", "a/b", false},
	{"a/+", "a/b", true},
	{"a/+", "a/b/c", false},
	{"a/+", "a/", true},
	{"a/+", "a", false},
	{"+", "a", true},
	{"+", "/", false},
	{"+/+", "/", true},
	{"/+", "/a", true},
	{"+", "/a", false},
	{"a/+/b", "a//b", true},
	{"a//b", "a//b", true},
	{"a//b", "a/b", false},
	{"a/#", "a", true},
	{"a/#", "a/", true},
	{"a/#", "a/b/c", true},
	{"a/#", "ab", false},
	{"a/#", "b/a", false},
	{"a/+/#", "a/b", true},
	{"a/+/#", "a", false},
	{"+/#", "a", true},
	{"#", "a/b", true},
	{"#", "/", true},
	{"#", "$SYS/x", false},
	{"#", "$", false},
	{"+/x", "$SYS/x", false},
	{"+", "$", false},
	{"+/#", "$SYS", false},
	{"$SYS/#", "$SYS/x", true},
	{"$SYS/#", "$SYS", true},
	{"$SYS/+", "$SYS/x", true},
	{"$SYS/+", "$SYS", false},
	{"a/$x", "a/$x", true},
	{"a/+", "a/$x", true}, // the '$' rule applies to the first level only
	{"a/#", "a/$x/y", true},
	{"x/\xC3\xA9", "x/\xC3\xA9", true},
	{"x/+", "x/\xC3\xA9", true},
}

func TestMatch(t *testing.T) {
	for _, tt := range matchTests {
		if got := Match([]byte(tt.filter), []byte(tt.name)); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.filter, tt.name, got, tt.want)
		}
	}
}

func TestValidNameAllocs(t *testing.T) {
	names := [][]byte{[]byte("site/17/device/4711/temp"), []byte("$SYS/x"), []byte("d\xC3\xA9j\xC3\xA0/\xEF\xBF\xBF")}
	bad := [][]byte{[]byte("a/+"), []byte("\xED\xA0\x80"), {}}
	allocs := testing.AllocsPerRun(100, func() {
		for _, n := range names {
			if ValidName(n) != nil {
				panic("invalid")
			}
		}
		for _, n := range bad {
			if ValidName(n) == nil {
				panic("valid")
			}
		}
		if ValidFilter([]byte("$share/g/site/+/#")) != nil || !Match(names[0], names[0]) {
			panic("unexpected")
		}
	})
	if allocs != 0 {
		t.Fatalf("validation allocates %v times per run", allocs)
	}
}

// TestRuneLenAgreesWithStdlib checks the hand-written UTF-8 decoder against
// unicode/utf8 on every 1- and 2-byte sequence and on longer ones built
// from boundary bytes.
func TestRuneLenAgreesWithStdlib(t *testing.T) {
	check := func(b []byte) {
		t.Helper()
		want := 0
		if r, n := utf8.DecodeRune(b); r != utf8.RuneError || n > 1 {
			want = n
		}
		if got := runeLen(b, 0); got != want {
			t.Fatalf("runeLen(% X) = %d, want %d", b, got, want)
		}
	}
	edges := []byte{0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF}
	for a := 0x80; a <= 0xFF; a++ {
		check([]byte{byte(a)})
		for b := 0; b <= 0xFF; b++ {
			check([]byte{byte(a), byte(b)})
			for _, c := range edges {
				check([]byte{byte(a), byte(b), c})
			}
		}
	}
	for _, a := range edges {
		if a < 0x80 {
			continue // runeLen is called on lead bytes only
		}
		for _, b := range edges {
			for _, c := range edges {
				for _, d := range edges {
					check([]byte{a, b, c, d})
				}
			}
		}
	}
}

// TestValidNameEveryPosition puts each interesting byte at every offset of a
// name longer than two words, so the eight-byte fast path is checked at
// every alignment.
func TestValidNameEveryPosition(t *testing.T) {
	cases := []struct {
		ins  string
		want error
	}{
		{"\x00", errNameNull},
		{"+", errNameWildcard},
		{"#", errNameWildcard},
		{"\x80", errNameUTF8},
		{"\xFF", errNameUTF8},
		{"\xED\xA0\x80", errNameUTF8},
		{"\xC3\xA9", nil},
		{"\xEF\xBF\xBF", nil},
		{"\x7F", nil},
		{"*", nil},  // 0x2A, next to '+' (0x2B)
		{",", nil},  // 0x2C
		{"\"", nil}, // 0x22, next to '#' (0x23)
		{"$", nil},  // 0x24
		{"\x01", nil},
	}
	for _, c := range cases {
		for pos := 0; pos <= 19; pos++ {
			name := strings.Repeat("a", pos) + c.ins + strings.Repeat("b", 19-pos)
			if got := ValidName([]byte(name)); got != c.want {
				t.Errorf("ValidName(%q) = %v, want %v", name, got, c.want)
			}
		}
	}
}
