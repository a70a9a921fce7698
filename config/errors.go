package config

import (
	"sort"
	"strconv"
	"strings"
)

// Error is one problem in a configuration file. Its text is
//
//	file:line: key: message
//
// for example
//
//	nanoactor.toml:12: mqtt.max_packet_size: must be between 16 and 268435455, got 0
//
// The file part is left out when File is empty, the line when Line is 0 (a
// value the file does not write, such as a default that conflicts with a
// written key), and the key when Key is empty (a TOML syntax error).
type Error struct {
	File string // the name given to Parse, or the path given to Load
	Line int    // 1-based; 0 when the problem has no line of its own
	Key  string // dotted key path, "listener[1].bind"; arrays of tables are indexed from 0
	Msg  string // what is wrong, lowercase, naming the offending value

	// also lists keys whose line locates the problem when Key is not
	// written in the file (a relation between two keys).
	also []string
}

// Error formats the problem as file:line: key: message.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one configuration, ordered by line. Parse,
// Load and Validate return it (as error) whenever they find any problem, so
// a user fixes a file in one round. Match it with errors.As; each *Error is
// also reachable with errors.As through Unwrap.
type Errors []*Error

// Error prints one problem per line.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// err returns es as an error, or nil when it is empty.
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

// sortByLine orders problems by line, then key, keeping the order in which
// they were found for equal positions.
func (es Errors) sortByLine() {
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Key < es[j].Key
	})
}
