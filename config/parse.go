package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// maxDecodeErrors bounds the decode-and-retry loop of parse: past this many
// type errors the rest of the file is not examined.
const maxDecodeErrors = 100

// Load reads and parses the configuration file at path (see Parse), then
// checks that the certificate and key files its listeners and bridges name
// can be read, so that a missing file is reported with its line before
// anything starts.
// Relative file names are relative to the working directory. Errors name
// the file as path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	c, ix, errs := parse(path, data)
	if c != nil {
		errs = append(errs, checkFiles(c, path, ix)...)
	}
	errs.sortByLine()
	if len(errs) > 0 {
		return nil, errs
	}
	return c, nil
}

// Parse decodes and validates a TOML configuration document. name is used
// only in error messages (usually the file's path). Keys the document leaves
// out take their defaults; with no [[listener]], the broker gets the single
// default listener (tcp, 127.0.0.1:1883).
//
// On any problem Parse returns a nil Config and an Errors listing every
// problem it found, each with its line and key: TOML syntax (only the first,
// since parsing stops there), unknown keys, values of the wrong type, and
// every check of Validate. Parse touches no file; Load does.
func Parse(name string, data []byte) (*Config, error) {
	c, _, errs := parse(name, data)
	if len(errs) > 0 {
		errs.sortByLine()
		return nil, errs
	}
	return c, nil
}

// parse does the work of Parse and returns what Load needs besides: the
// index, and the Config even when there are problems (nil only when it could
// not be decoded at all).
func parse(name string, data []byte) (*Config, *index, Errors) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a UTF-8 BOM some editors write
	ix, serr := buildIndex(data)
	if serr != nil {
		return nil, nil, Errors{{
			File: name, Line: serr.line,
			Msg: fmt.Sprintf("invalid TOML at column %d: %s", serr.column, serr.msg),
		}}
	}

	var errs Errors
	doc := append([]byte(nil), data...)
	blanked := map[int]bool{}
	masked := map[string]bool{} // keys whose written value was dropped for a default
	report := func(e *Error, mask bool) {
		e.File = name
		errs = append(errs, e)
		if mask {
			masked[e.Key] = true
		}
	}

	// Shapes go-toml would accept wrongly or report without a position.
	for i := range ix.entries {
		if e := precheck(&ix.entries[i]); e != nil {
			report(e, true)
			ix.blank(doc, e.Line, blanked)
		}
	}

	c := decode(ix, doc, blanked, report)
	if c == nil {
		return nil, ix, errs
	}
	c.applyDefaults(ix)
	if verr := c.Validate(); verr != nil {
		for _, e := range verr.(Errors) {
			if masked[e.Key] {
				continue // its value is a default standing in for a reported one
			}
			e.File = name
			e.Line = ix.lineFor(e.Key, e.also)
			errs = append(errs, e)
		}
	}
	return c, ix, errs
}

// decode decodes doc over the defaults in go-toml's strict mode. A type
// error stops go-toml at the first one; decode reports it, blanks the
// offending expression, and decodes again, so every one is reported.
func decode(ix *index, doc []byte, blanked map[int]bool, report func(e *Error, masked bool)) *Config {
	for range maxDecodeErrors {
		c := base()
		dec := toml.NewDecoder(bytes.NewReader(doc))
		dec.DisallowUnknownFields()
		err := dec.Decode(c)

		var strict *toml.StrictMissingError
		var derr *toml.DecodeError
		switch {
		case err == nil:
			return c
		case errors.As(err, &strict):
			// Decoding went to the end; only unknown keys are left.
			for i := range strict.Errors {
				report(unknownKey(ix, &strict.Errors[i]), false)
			}
			return c
		case errors.As(err, &derr):
			e, dup := decodeError(ix, derr)
			report(e, !dup)
			if !ix.blank(doc, e.Line, blanked) {
				return nil
			}
		default:
			report(&Error{Msg: err.Error()}, false)
			return nil
		}
	}
	report(&Error{Msg: fmt.Sprintf("more than %d errors; stopped", maxDecodeErrors)}, false)
	return nil
}

// unknownKey turns one of go-toml's strict-mode errors into an Error keyed
// by the full path, with a suggestion when a known key is close.
func unknownKey(ix *index, de *toml.DecodeError) *Error {
	line, col := de.Position()
	key := strings.Join(de.Key(), ".")
	if e := ix.at(ix.offset(line, col)); e != nil {
		key = e.path
		line = e.line
		msg := "unknown key"
		if e.kind == unstable.Table || e.kind == unstable.ArrayTable {
			msg = "unknown table"
		}
		return &Error{Line: line, Key: key, Msg: msg + suggest(e.parts)}
	}
	return &Error{Line: line, Key: key, Msg: "unknown key"}
}

// decodeError turns a go-toml DecodeError (wrong type, key defined twice)
// into an Error keyed by the full path. dup reports a key written twice,
// whose first value still stands.
func decodeError(ix *index, de *toml.DecodeError) (out *Error, dup bool) {
	line, col := de.Position()
	msg := de.Error()
	for strings.HasPrefix(msg, "toml: ") {
		msg = msg[len("toml: "):]
	}
	e := ix.at(ix.offset(line, col))
	if e == nil {
		return &Error{Line: line, Key: strings.Join(de.Key(), "."), Msg: msg}, false
	}
	out = &Error{Line: e.line, Key: e.path, Msg: msg}
	switch {
	case strings.HasPrefix(msg, "cannot decode TOML "):
		if t := typeAt(e.parts); t != nil && e.kind == unstable.KeyValue {
			out.Msg = fmt.Sprintf("must be %s, got %s", describeType(t), describeValue(e))
		} else {
			out.Msg = goFieldRE.ReplaceAllString(msg, "")
		}
	case redefinedRE.MatchString(msg):
		// A key or table written twice: the first stands.
		dup = true
		name := redefinedRE.FindStringSubmatch(msg)[1]
		for _, path := range []string{e.path, name} {
			if f := ix.earlier(path, e.line); f != nil {
				if path == e.path {
					out.Msg = fmt.Sprintf("is written twice; first on line %d", f.line)
				} else {
					out.Msg = fmt.Sprintf("%s is already written on line %d", path, f.line)
				}
				break
			}
		}
	}
	return out, dup
}

var (
	// goFieldRE matches the Go field go-toml names in a type error.
	goFieldRE = regexp.MustCompile(`struct field \S+ of type `)
	// redefinedRE matches go-toml's errors for a key or table written twice.
	redefinedRE = regexp.MustCompile(`^(?:key|table) (\S+) (?:is already defined|already exists)`)
)

// precheck finds the shapes go-toml handles badly: a bare integer for a
// Duration (which it would read as nanoseconds), a non-string value for a
// Duration or a Size (an error without position), a bad duration or size
// string, and a [table] written for an array of tables or the reverse.
func precheck(e *entry) *Error {
	t := typeAt(e.parts)
	if t == nil {
		return nil // unknown keys are strict mode's to report
	}
	bad := func(format string, args ...any) *Error {
		return &Error{Line: e.line, Key: e.path, Msg: fmt.Sprintf(format, args...)}
	}
	switch e.kind {
	case unstable.Table:
		if t.Kind() == reflect.Slice {
			key := e.path
			if strings.HasSuffix(key, "]") {
				key = parentPath(key) // "listener", not "listener[0]"
			}
			return &Error{Line: e.line, Key: key,
				Msg: fmt.Sprintf("is an array of tables: write [[%s]]", strings.Join(e.parts, "."))}
		}
	case unstable.ArrayTable:
		if t.Kind() == reflect.Struct {
			// Keyed "mqtt", not "mqtt[0]".
			return &Error{Line: e.line, Key: parentPath(e.path),
				Msg: fmt.Sprintf("is a table: write [%s], not [[%[1]s]]", strings.Join(e.parts, "."))}
		}
	case unstable.KeyValue:
		switch t {
		case durationType:
			if e.val != unstable.String {
				return bad("must be %s, got %s", describeType(t), describeValue(e))
			}
			if _, err := parseDuration(e.text); err != nil {
				return bad("%v", err)
			}
		case sizeType:
			switch e.val {
			case unstable.Integer:
			case unstable.String:
				if _, err := parseSize(e.text); err != nil {
					return bad("%v", err)
				}
			default:
				return bad("must be %s, got %s", describeType(t), describeValue(e))
			}
		}
	}
	return nil
}

var (
	configType   = reflect.TypeFor[Config]()
	durationType = reflect.TypeFor[Duration]()
	sizeType     = reflect.TypeFor[Size]()
)

// typeAt returns the Go type a key path decodes into, or nil when the path
// names no field. Arrays of tables contribute their element type.
func typeAt(parts []string) reflect.Type {
	t := configType
	for _, name := range parts {
		if t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		f, ok := fieldByKey(t, name)
		if !ok {
			return nil
		}
		t = f.Type
	}
	return t
}

// fieldByKey finds the field of struct type t whose toml tag is name.
func fieldByKey(t reflect.Type, name string) (reflect.StructField, bool) {
	if t.Kind() != reflect.Struct {
		return reflect.StructField{}, false
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if tagName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	return name
}

// suggest returns ` (did you mean "x"?)` for the first unknown part of a
// key path when a known key at that level is close to it, else "".
func suggest(parts []string) string {
	t := configType
	for _, name := range parts {
		if t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return ""
		}
		f, ok := fieldByKey(t, name)
		if ok {
			t = f.Type
			continue
		}
		best, bestDist := "", len(name)/3+2
		norm := strings.ReplaceAll(strings.ToLower(name), "-", "_")
		for i := range t.NumField() {
			known := tagName(t.Field(i))
			if d := editDistance(norm, known); d < bestDist {
				best, bestDist = known, d
			}
		}
		if best == "" {
			return ""
		}
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// describeType names what a key of Go type t must be written as.
func describeType(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem() // an optional key (nil when left out)
	}
	switch t {
	case durationType:
		return `a duration string like "10s"`
	case sizeType:
		return `a number of bytes, like 1048576 or "1MiB"`
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return "an array of tables"
		}
		return "an array"
	case reflect.Struct:
		return "a table"
	}
	return t.String()
}

// describeValue shows a value as written, or its kind when it is long.
func describeValue(e *entry) string {
	switch e.val {
	case unstable.Array:
		return "an array"
	case unstable.InlineTable:
		return "a table"
	}
	if len(e.raw) > 40 || strings.ContainsAny(e.raw, "\r\n") {
		return "a " + strings.ToLower(e.val.String())
	}
	return e.raw
}

// checkFiles reports the certificate and key files of TLS listeners and of
// TLS and QUIC bridges that cannot be opened for reading.
func checkFiles(c *Config, name string, ix *index) Errors {
	var errs Errors
	check := func(key, path string) {
		if path == "" {
			return
		}
		fh, err := os.Open(path)
		if err != nil {
			var perr *os.PathError
			if errors.As(err, &perr) {
				err = perr.Err
			}
			errs = append(errs, &Error{File: name, Line: ix.lineFor(key, nil), Key: key,
				Msg: fmt.Sprintf("cannot read %q: %v", path, err)})
			return
		}
		fh.Close()
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if !l.TLS() {
			continue
		}
		check(fmt.Sprintf("listener[%d].cert_file", i), l.CertFile)
		check(fmt.Sprintf("listener[%d].key_file", i), l.KeyFile)
		check(fmt.Sprintf("listener[%d].ca_file", i), l.CAFile)
	}
	for i := range c.Bridges {
		b := &c.Bridges[i]
		if !b.UsesTLS() {
			continue // Validate refuses [bridge.tls] keys there
		}
		t := &b.TLS
		check(fmt.Sprintf("bridge[%d].tls.ca_file", i), t.CAFile)
		check(fmt.Sprintf("bridge[%d].tls.cert_file", i), t.CertFile)
		check(fmt.Sprintf("bridge[%d].tls.key_file", i), t.KeyFile)
	}
	return errs
}
