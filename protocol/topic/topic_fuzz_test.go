package topic

import (
	"bytes"
	"errors"
	"maps"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzIndex drives an Index with a fuzz-generated sequence of operations and
// compares every snapshot with the naive matcher over a model.
//
// Input: lines separated by '\n'. The first line is the topic to match. Each
// further line is an operation; its first byte b selects it and the rest is
// the filter:
//
//	b&3 == 0 or 1: Subscribe(filter, key = b>>2&3)
//	b&3 == 2:      Unsubscribe(filter, key = b>>2&3)
//	b&3 == 3:      b&4 == 0 opens a Batch, otherwise closes the open one
//
// Every snapshot published along the way is kept with a copy of the model
// and checked at the end, so a change that leaks into an older snapshot is
// caught. The sequence runs twice: with full hashes and with one-bit hashes,
// which forces the hash tries into deep chains and collision lists.
func FuzzIndex(f *testing.F) {
	for _, seed := range []string{
		"a/b\n\x00a/b\n\x04a/+\n\x08a/#\n\x0c#\n\x00+/b",
		"$SYS/x\n\x00#\n\x00+/x\n\x00$SYS/#\n\x00$SYS/+",
		"a\n\x00a/#\n\x02a/#\n\x00a",
		"a//b\n\x00a/+/b\n\x00a//b\n\x00+/+/+",
		"a/b\n\x00$share/g/a/+\n\x04$share/g/a/+\n\x00$share/h/#\n\x06$share/g/a/+",
		"a/b\n\x03\n\x00a/b\n\x04a/b\n\x02a/b\n\x07\n\x00a/#",
		"x\n\x00$share/g\n\x00$share//x\n\x00a/#/b\n\x00x+",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lines := bytes.Split(data, []byte("\n"))
		if len(lines) > 64 {
			lines = lines[:64] // bound the work per input
		}
		for _, mask := range []uint64{^uint64(0), 1} {
			fuzzIndexOps(t, newIndex[int, string](mask), string(lines[0]), lines[1:])
		}
	})
}

func fuzzIndexOps(t *testing.T, x *Index[int, string], topic string, ops [][]byte) {
	m := model{}
	type frozen struct {
		snap *Snapshot[int, string]
		m    model
	}
	old := []frozen{{x.Snapshot(), model{}}}
	var run func(i, depth int) int
	run = func(i, depth int) int {
		for i < len(ops) {
			op := ops[i]
			i++
			if len(op) == 0 {
				continue
			}
			b, filter := op[0], string(op[1:])
			key := int(b >> 2 & 3)
			switch b & 3 {
			case 0, 1:
				val := filter + "@" + string(rune('0'+i))
				added, err := x.Subscribe(filter, key, val)
				if verr := ValidFilter(op[1:]); err != verr {
					t.Fatalf("Subscribe(%q) error %v, ValidFilter says %v", filter, err, verr)
				}
				if err == nil {
					if _, had := m[modelSub{filter, key}]; added == had {
						t.Fatalf("Subscribe(%q, %d) added = %v, had %v", filter, key, added, had)
					}
					m[modelSub{filter, key}] = val
				}
			case 2:
				removed, err := x.Unsubscribe(filter, key)
				if verr := ValidFilter(op[1:]); err != verr {
					t.Fatalf("Unsubscribe(%q) error %v, ValidFilter says %v", filter, err, verr)
				}
				if _, had := m[modelSub{filter, key}]; removed != had {
					t.Fatalf("Unsubscribe(%q, %d) = %v, had %v", filter, key, removed, had)
				}
				delete(m, modelSub{filter, key})
			case 3:
				if b&4 != 0 {
					if depth > 0 {
						return i
					}
					continue
				}
				before := x.Snapshot()
				x.Batch(func() {
					i = run(i, depth+1)
					if x.Snapshot() != before {
						t.Fatal("Batch published before it returned")
					}
				})
			}
			checkTree(t, x)
			if depth == 0 {
				old = append(old, frozen{x.Snapshot(), maps.Clone(m)})
			}
		}
		return i
	}
	run(0, 0)
	old = append(old, frozen{x.Snapshot(), m})
	for _, o := range old {
		checkMatch(t, "snapshot", o.snap, o.m, topic)
	}
	// Also match topics made from the filters themselves, which run along
	// the compressed paths and end inside or at their ends.
	for s := range m {
		_, inner, _, _ := parseShared(s.filter)
		for _, t2 := range []string{inner, strings.ReplaceAll(strings.ReplaceAll(inner, "+", "x"), "#", "y/z")} {
			if ValidName([]byte(t2)) == nil {
				checkMatch(t, "filter topic", x.Snapshot(), m, t2)
				if i := strings.LastIndexByte(t2, '/'); i >= 0 {
					checkMatch(t, "filter topic prefix", x.Snapshot(), m, t2[:i])
				}
			}
		}
	}
	for s := range m {
		x.Unsubscribe(s.filter, s.key)
	}
	if x.root != nil || x.Snapshot().Len() != 0 {
		t.Fatal("index not empty after removing every subscription")
	}
}

// FuzzValidate checks that validation never panics and agrees with simple
// invariants: the UTF-8 rules match unicode/utf8, a valid filter has
// wildcards only as whole levels, a valid name matches itself, and a valid
// filter matches the name obtained by replacing each wildcard level with "x".
func FuzzValidate(f *testing.F) {
	for _, seed := range []string{
		"a/b", "a/+/#", "#", "+", "/", "$SYS/#", "$share/g/a/+", "$share/g", "$share//a",
		"a\x00", "\xED\xA0\x80", "\xEF\xBF\xBF", "\xC0\x80", "\xF4\x90\x80\x80", "a/#/b", "a+/b",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		nameErr := ValidName(b)
		filterErr := ValidFilter(b)
		group, inner, shared, parseErr := ParseShared(b)
		Match(b, b)

		if nameErr != validName(string(b)) {
			t.Fatalf("ValidName: []byte and string forms disagree on %q", b)
		}
		if _, _, _, err := parseShared(string(b)); err != filterErr || parseErr != filterErr {
			t.Fatalf("ValidFilter %v, ParseShared %v, string form %v on %q", filterErr, parseErr, err, b)
		}
		if nameErr != nil && !errors.Is(nameErr, ErrInvalidName) {
			t.Fatalf("ValidName(%q) = %v, not ErrInvalidName", b, nameErr)
		}
		if filterErr != nil && !errors.Is(filterErr, ErrInvalidFilter) {
			t.Fatalf("ValidFilter(%q) = %v, not ErrInvalidFilter", b, filterErr)
		}

		wellFormed := utf8.Valid(b) && bytes.IndexByte(b, 0) < 0
		sizeOK := len(b) > 0 && len(b) <= MaxLen
		wantName := wellFormed && sizeOK && !bytes.ContainsAny(b, "+#")
		if (nameErr == nil) != wantName {
			t.Fatalf("ValidName(%q) = %v, want valid = %v", b, nameErr, wantName)
		}
		// The first violation found is reported, so a name that is both
		// malformed and holds a wildcard may report either.
		malformed := errors.Is(nameErr, ErrMalformedUTF8)
		if malformed && wellFormed || !malformed && !wellFormed && sizeOK && !bytes.ContainsAny(b, "+#") {
			t.Fatalf("ValidName(%q) = %v, but well-formed = %v", b, nameErr, wellFormed)
		}
		if nameErr == nil {
			if !Match(b, b) {
				t.Fatalf("valid name %q does not match itself", b)
			}
			if !bytes.HasPrefix(b, []byte(sharePrefix)) && filterErr != nil {
				t.Fatalf("valid name %q is not a valid filter: %v", b, filterErr)
			}
		}
		if filterErr != nil {
			if group != nil || inner != nil {
				t.Fatalf("ParseShared(%q) returned slices with error %v", b, filterErr)
			}
			return
		}
		if !wellFormed || !sizeOK {
			t.Fatalf("ValidFilter accepted %q", b)
		}
		plain := b
		if shared {
			if !bytes.Equal(b, bytes.Join([][]byte{[]byte("$share"), group, inner}, []byte("/"))) {
				t.Fatalf("ParseShared(%q) = %q, %q", b, group, inner)
			}
			if len(group) == 0 || bytes.ContainsAny(group, "/+#") || len(inner) == 0 {
				t.Fatalf("ParseShared(%q) accepted group %q, inner %q", b, group, inner)
			}
			plain = inner
		} else if bytes.HasPrefix(b, []byte(sharePrefix)) || group != nil || inner != nil {
			t.Fatalf("ParseShared(%q) = %q, %q, not shared", b, group, inner)
		}
		levels := bytes.Split(plain, []byte("/"))
		var name [][]byte
		for i, l := range levels {
			switch {
			case bytes.Equal(l, []byte("#")):
				if i != len(levels)-1 {
					t.Fatalf("ValidFilter accepted '#' before the last level in %q", b)
				}
				name = append(name, []byte("x"))
			case bytes.Equal(l, []byte("+")):
				name = append(name, []byte("x"))
			case bytes.ContainsAny(l, "+#"):
				t.Fatalf("ValidFilter accepted a wildcard inside level %q of %q", l, b)
			default:
				name = append(name, l)
			}
		}
		n := bytes.Join(name, []byte("/"))
		if ValidName(n) != nil {
			t.Fatalf("name %q derived from filter %q is invalid: %v", n, b, ValidName(n))
		}
		if !Match(plain, n) {
			t.Fatalf("filter %q does not match derived name %q", plain, n)
		}
	})
}

// checkTree checks the shape of the working tree: no empty node, and path
// compression complete (no node but the root with a single literal child
// and nothing else) and well formed (ext levels are literal).
func checkTree(t *testing.T, x *Index[int, string]) {
	t.Helper()
	var walk func(n *node[int, string], root bool, path string)
	walk = func(n *node[int, string], root bool, path string) {
		if n == nil {
			return
		}
		if n.pruned() == nil {
			t.Fatalf("%q: empty node", path)
		}
		ext := n.extString()
		if root && ext != "" {
			t.Fatalf("root has ext %q", ext)
		}
		if ext != "" {
			if ext[0] != '/' {
				t.Fatalf("%q: ext %q", path, ext)
			}
			for _, l := range strings.Split(ext[1:], "/") {
				if l == "+" || l == "#" {
					t.Fatalf("%q: wildcard in ext %q", path, ext)
				}
			}
		}
		if !root && x.compress(n) != n {
			t.Fatalf("%q: node not compressed: %+v", path, n)
		}
		if n.hash != nil && (n.hash.kids.n != 0 || n.hash.plus != nil || n.hash.hash != nil || n.hash.ext != noExt) {
			t.Fatalf("%q: '#' node with children", path)
		}
		n.kids.each(func(k string, c *node[int, string]) {
			if k == "+" || k == "#" {
				t.Fatalf("%q: literal child %q", path, k)
			}
			walk(c, false, path+"/"+k+c.extString())
		})
		walk(n.plus, false, path+"/+")
		walk(n.hash, false, path+"/#")
	}
	walk(x.root, true, "")
}
