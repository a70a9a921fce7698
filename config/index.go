package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// index maps every key of a document to where it is written. It is built with
// go-toml's unstable parser before decoding, so that errors found after
// decoding (value checks) and errors go-toml reports by position (type
// mismatches, unknown keys) can both be named by key path and line.
//
// Key paths are dotted, with array-of-tables entries indexed from 0 in the
// order they appear: "mqtt.max_packet_size", "listener[1].bind".
type index struct {
	data       []byte
	lineStarts []int            // byte offset of the start of each line; lineStarts[0] == 0
	entries    []entry          // every table header and key-value, nested ones included
	lines      map[string]int   // path -> line of its first appearance
	arrays     map[string]int   // array-of-tables path -> entries seen so far
	exprs      []int            // line of each top-level expression, in order
	headers    map[int]struct{} // lines of the top-level expressions that are table headers
}

// entry is one table header or key-value of the document.
type entry struct {
	path  string   // "listener[1].bind"
	parts []string // path without indexes, for type lookups: ["listener", "bind"]
	line  int
	start int // byte span: the key and value of a key-value, the key of a header
	end   int

	top  bool          // a top-level expression, not a key nested in one
	kind unstable.Kind // KeyValue, Table, ArrayTable, or InlineTable for an array element
	val  unstable.Kind // kind of the value, for a KeyValue
	raw  string        // the value as written, for a KeyValue with a scalar value
	text string        // the value's content (unquoted string), for a scalar
}

// syntaxError is a document go-toml cannot parse.
type syntaxError struct {
	line, column int
	msg          string
}

// buildIndex parses data with the unstable parser. It fails only on a TOML
// syntax error.
func buildIndex(data []byte) (*index, *syntaxError) {
	ix := &index{
		data:    data,
		lines:   map[string]int{},
		arrays:  map[string]int{},
		headers: map[int]struct{}{},
	}
	ix.lineStarts = append(ix.lineStarts, 0)
	for i, b := range data {
		if b == '\n' {
			ix.lineStarts = append(ix.lineStarts, i+1)
		}
	}

	var p unstable.Parser
	p.Reset(data)
	table, tableParts := "", []string(nil)
	for p.NextExpression() {
		n := p.Expression()
		switch n.Kind {
		case unstable.Table, unstable.ArrayTable:
			names, start, end := keyOf(n)
			path, parts := ix.resolveHeader(names, n.Kind == unstable.ArrayTable)
			line := ix.lineOf(start)
			ix.add(entry{path: path, parts: parts, line: line, start: start, end: end, top: true, kind: n.Kind})
			ix.exprs = append(ix.exprs, line)
			ix.headers[line] = struct{}{}
			table, tableParts = path, parts
		case unstable.KeyValue:
			ix.exprs = append(ix.exprs, ix.lineOf(int(n.Raw.Offset)))
			top := len(ix.entries)
			ix.keyValue(n, table, tableParts)
			ix.entries[top].top = true
		}
	}
	if err := p.Error(); err != nil {
		se := &syntaxError{line: 1, column: 1, msg: err.Error()}
		if perr, ok := err.(*unstable.ParserError); ok {
			if off, ok := offsetIn(data, perr.Highlight); ok {
				se.line = ix.lineOf(off)
				se.column = off - ix.lineStarts[se.line-1] + 1
			}
		}
		return nil, se
	}
	return ix, nil
}

// keyOf returns the names of a node's key and the byte span they cover.
func keyOf(n *unstable.Node) (names []string, start, end int) {
	it := n.Key()
	start = -1
	for it.Next() {
		k := it.Node()
		names = append(names, string(k.Data))
		if start < 0 {
			start = int(k.Raw.Offset)
		}
		end = int(k.Raw.Offset + k.Raw.Length)
	}
	return names, start, end
}

// resolveHeader turns the key of a [table] or [[array]] header into a path,
// indexing the arrays of tables it goes through, and counts a new entry of
// an array of tables.
func (ix *index) resolveHeader(names []string, array bool) (string, []string) {
	path := ""
	for i, name := range names {
		path = joinPath(path, name)
		last := i == len(names)-1
		if last && array {
			n := ix.arrays[path]
			ix.arrays[path] = n + 1
			path = fmt.Sprintf("%s[%d]", path, n)
			continue
		}
		if n := ix.arrays[path]; n > 0 {
			path = fmt.Sprintf("%s[%d]", path, n-1)
		}
	}
	return path, append([]string(nil), names...)
}

// keyValue records a key-value under the table at prefix, and the keys nested
// in its value (inline tables, arrays of inline tables).
func (ix *index) keyValue(n *unstable.Node, prefix string, prefixParts []string) {
	names, start, _ := keyOf(n)
	path := prefix
	for _, name := range names {
		path = joinPath(path, name)
	}
	parts := append(append([]string(nil), prefixParts...), names...)
	v := n.Value()
	e := entry{
		path:  path,
		parts: parts,
		line:  ix.lineOf(start),
		start: start,
		end:   int(n.Raw.Offset + n.Raw.Length),
		kind:  unstable.KeyValue,
		val:   v.Kind,
	}
	if v.Kind != unstable.Array && v.Kind != unstable.InlineTable {
		e.raw = string(ix.data[v.Raw.Offset : v.Raw.Offset+v.Raw.Length])
		e.text = string(v.Data)
	}
	ix.add(e)
	ix.value(v, path, parts)
}

// value records the keys nested in an inline table or an array.
func (ix *index) value(v *unstable.Node, path string, parts []string) {
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				ix.keyValue(c, path, parts)
			}
		}
	case unstable.Array:
		i := 0
		it := v.Children()
		for it.Next() {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			if c.Kind == unstable.InlineTable || c.Kind == unstable.Array {
				elem := fmt.Sprintf("%s[%d]", path, i)
				off := int(c.Raw.Offset)
				ix.add(entry{path: elem, parts: parts, line: ix.lineOf(off), start: off, end: off + int(c.Raw.Length), kind: c.Kind})
				ix.value(c, elem, parts)
			}
			i++
		}
	}
}

func (ix *index) add(e entry) {
	ix.entries = append(ix.entries, e)
	if _, ok := ix.lines[e.path]; !ok {
		ix.lines[e.path] = e.line
	}
	// An array of tables is located by its first entry.
	if strings.HasSuffix(e.path, "]") {
		if base := parentPath(e.path); base != "" {
			if _, ok := ix.lines[base]; !ok {
				ix.lines[base] = e.line
			}
		}
	}
}

// has reports whether the document writes path (a key, table or array).
func (ix *index) has(path string) bool {
	_, ok := ix.lines[path]
	return ok
}

// earlier returns the first entry for path written before line, or nil.
func (ix *index) earlier(path string, line int) *entry {
	for i := range ix.entries {
		if e := &ix.entries[i]; e.path == path && e.line < line {
			return e
		}
	}
	return nil
}

// lineOf returns the 1-based line holding byte offset off.
func (ix *index) lineOf(off int) int {
	return sort.Search(len(ix.lineStarts), func(i int) bool { return ix.lineStarts[i] > off })
}

// offset returns the byte offset of a 1-based line and column.
func (ix *index) offset(line, column int) int {
	if line < 1 || line > len(ix.lineStarts) {
		return -1
	}
	return ix.lineStarts[line-1] + column - 1
}

// at returns the innermost entry whose span holds byte offset off, or else
// the last entry starting before it on the same line.
//
// Entries are in document order and nested ones follow their container, so
// the innermost container is the closest one before off; the scan back
// stops at the top-level expression.
func (ix *index) at(off int) *entry {
	i := sort.Search(len(ix.entries), func(i int) bool { return ix.entries[i].start > off }) - 1
	var fallback *entry
	line := ix.lineOf(off)
	for ; i >= 0; i-- {
		e := &ix.entries[i]
		if off < e.end {
			return e
		}
		if fallback == nil && e.line == line {
			fallback = e
		}
		if e.top {
			break
		}
	}
	return fallback
}

// lineFor returns the line that best locates key: its own, else the first
// of alt that is written, else its closest written parent; 0 if none.
func (ix *index) lineFor(key string, alt []string) int {
	if l, ok := ix.lines[key]; ok {
		return l
	}
	for _, k := range alt {
		if l, ok := ix.lines[k]; ok {
			return l
		}
	}
	for k := parentPath(key); k != ""; k = parentPath(k) {
		if l, ok := ix.lines[k]; ok {
			return l
		}
	}
	return 0
}

// blank overwrites, in doc (a copy of the indexed data), the top-level
// expression written on line: a key-value with everything up to the next
// expression, a table header with its whole body. Newlines are kept, so
// lines and offsets do not move. It reports false when there is no such
// expression or it was blanked already.
func (ix *index) blank(doc []byte, line int, done map[int]bool) bool {
	i := sort.Search(len(ix.exprs), func(i int) bool { return ix.exprs[i] > line }) - 1
	if i < 0 || done[ix.exprs[i]] {
		return false
	}
	first := ix.exprs[i]
	_, header := ix.headers[first]
	j := i + 1
	for header && j < len(ix.exprs) {
		if _, ok := ix.headers[ix.exprs[j]]; ok {
			break
		}
		j++
	}
	end := len(doc)
	if j < len(ix.exprs) {
		end = ix.lineStarts[ix.exprs[j]-1]
	}
	for k := ix.lineStarts[first-1]; k < end; k++ {
		if doc[k] != '\n' {
			doc[k] = ' '
		}
	}
	for k := i; k < j; k++ {
		done[ix.exprs[k]] = true
	}
	return true
}

// offsetIn returns the offset of sub within doc, when sub is a slice of it.
func offsetIn(doc, sub []byte) (int, bool) {
	off := cap(doc) - cap(sub)
	if sub == nil || off < 0 || off > len(doc) {
		return 0, false
	}
	return off, true
}

func joinPath(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

// parentPath returns the path one level up: "listener[1].bind" ->
// "listener[1]" -> "listener" -> "".
func parentPath(path string) string {
	if strings.HasSuffix(path, "]") {
		if i := strings.LastIndexByte(path, '['); i > 0 {
			return path[:i]
		}
	}
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		return path[:i]
	}
	return ""
}
