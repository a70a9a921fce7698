package topic

import (
	"math/bits"
	"slices"
)

// This file holds hmap, a persistent hash array mapped trie (HAMT). The
// index keeps a node's children and a filter's subscribers in one, so that a
// change copies O(log32 n) small nodes of the map instead of all n entries:
// a level with a million children or a filter with a million subscribers
// costs the same to change as a small one.
//
// Persistence: a node whose epoch differs from the owner's current epoch may
// be reachable from a published Snapshot and is never written; the owner
// copies it first. A node whose epoch equals the current epoch was created
// since the last publish, is reachable only from unpublished state, and is
// changed in place. Publishing advances the epoch and so freezes everything.

const (
	hamtBits = 5
	hamtMask = 1<<hamtBits - 1
)

// hmap is a persistent map from K to V. The zero value is empty. Readers may
// call get and each on a published value from any goroutine; set and del
// belong to the owner and take the current epoch.
//
// A map of one entry, the most common size in a topic trie (a level with one
// child, a filter with one subscriber), holds it inline: no trie node, and
// one cache miss less on lookup.
type hmap[K comparable, V any] struct {
	root *hnode[K, V] // nil unless n >= 2
	n    int          // number of entries
	key  K            // the entry when n == 1
	val  V
}

// hnode is one level of the trie. Up to 64 bits of hash are consumed five at
// a time; below that (shift >= 64) a node is a collision list whose slots
// all hold entries with the same hash, in no order, and bitmap is unused.
type hnode[K comparable, V any] struct {
	epoch  uint64
	bitmap uint32        // bit i set: slot for hash digit i present
	slots  []hslot[K, V] // one per set bit, in digit order
}

// hslot is an entry (sub == nil) or a subtree (sub != nil, key/val unused).
type hslot[K comparable, V any] struct {
	sub *hnode[K, V]
	key K
	val V
}

func digit(h uint64, shift uint) uint32 { return uint32(1) << ((h >> shift) & hamtMask) }

// A node is allocated in one object with its slot array, in a few capacity
// classes, so that a lookup takes one cache miss per level instead of two.
// Only collision lists longer than 32 get a separate array.
type (
	hnode1[K comparable, V any] struct {
		hnode[K, V]
		a [1]hslot[K, V]
	}
	hnode2[K comparable, V any] struct {
		hnode[K, V]
		a [2]hslot[K, V]
	}
	hnode3[K comparable, V any] struct {
		hnode[K, V]
		a [3]hslot[K, V]
	}
	hnode4[K comparable, V any] struct {
		hnode[K, V]
		a [4]hslot[K, V]
	}
	hnode6[K comparable, V any] struct {
		hnode[K, V]
		a [6]hslot[K, V]
	}
	hnode8[K comparable, V any] struct {
		hnode[K, V]
		a [8]hslot[K, V]
	}
	hnode12[K comparable, V any] struct {
		hnode[K, V]
		a [12]hslot[K, V]
	}
	hnode16[K comparable, V any] struct {
		hnode[K, V]
		a [16]hslot[K, V]
	}
	hnode24[K comparable, V any] struct {
		hnode[K, V]
		a [24]hslot[K, V]
	}
	hnode32[K comparable, V any] struct {
		hnode[K, V]
		a [32]hslot[K, V]
	}
)

// newNode returns a node of epoch e with n zero slots and room for c >= n.
func newNode[K comparable, V any](e uint64, bitmap uint32, n, c int) *hnode[K, V] {
	var h *hnode[K, V]
	var s []hslot[K, V]
	switch {
	case c <= 1:
		p := new(hnode1[K, V])
		h, s = &p.hnode, p.a[:]
	case c <= 2:
		p := new(hnode2[K, V])
		h, s = &p.hnode, p.a[:]
	case c <= 3:
		p := new(hnode3[K, V])
		h, s = &p.hnode, p.a[:]
	case c <= 4:
		p := new(hnode4[K, V])
		h, s = &p.hnode, p.a[:]
	case c <= 6:
		p := new(hnode6[K, V])
		h, s = &p.hnode, p.a[:]
	case c <= 8:
		p := new(hnode8[K, V])
		h, s = &p.hnode, p.a[:]
	case c <= 12:
		p := new(hnode12[K, V])
		h, s = &p.hnode, p.a[:]
	case c <= 16:
		p := new(hnode16[K, V])
		h, s = &p.hnode, p.a[:]
	case c <= 24:
		p := new(hnode24[K, V])
		h, s = &p.hnode, p.a[:]
	case c <= 32:
		p := new(hnode32[K, V])
		h, s = &p.hnode, p.a[:]
	default:
		h, s = new(hnode[K, V]), make([]hslot[K, V], c)
	}
	h.epoch, h.bitmap, h.slots = e, bitmap, s[:n]
	return h
}

// edit returns n if it belongs to epoch e and has room for extra more
// slots, else a copy that does. A caller whose node is replaced updates the
// pointer to it.
func (n *hnode[K, V]) edit(e uint64, extra int) *hnode[K, V] {
	if n.epoch == e && cap(n.slots)-len(n.slots) >= extra {
		return n
	}
	c := newNode[K, V](e, n.bitmap, len(n.slots), len(n.slots)+extra)
	copy(c.slots, n.slots)
	return c
}

// newNode2 returns a node of epoch e holding slots a and b, in that order.
func newNode2[K comparable, V any](e uint64, bitmap uint32, a, b hslot[K, V]) *hnode[K, V] {
	n := newNode[K, V](e, bitmap, 2, 2)
	n.slots[0], n.slots[1] = a, b
	return n
}

// get returns the value stored for key, whose hash is h.
func (m *hmap[K, V]) get(h uint64, key K) (v V, ok bool) {
	if m.n == 1 {
		if m.key == key {
			return m.val, true
		}
		return v, false
	}
	n := m.root
	for shift := uint(0); n != nil; shift += hamtBits {
		if shift >= 64 {
			for i := range n.slots {
				if n.slots[i].key == key {
					return n.slots[i].val, true
				}
			}
			return v, false
		}
		bit := digit(h, shift)
		if n.bitmap&bit == 0 {
			return v, false
		}
		s := &n.slots[bits.OnesCount32(n.bitmap&(bit-1))]
		if s.sub == nil {
			if s.key == key {
				return s.val, true
			}
			return v, false
		}
		n = s.sub
	}
	return v, false
}

// getLevel is get for a map keyed by topic level, looked up by a []byte level
// without converting it to a string (the comparison does not allocate).
func getLevel[V any](m *hmap[string, V], h uint64, level []byte) (v V, ok bool) {
	if m.n == 1 {
		if m.key == string(level) {
			return m.val, true
		}
		return v, false
	}
	n := m.root
	for shift := uint(0); n != nil; shift += hamtBits {
		if shift >= 64 {
			for i := range n.slots {
				if n.slots[i].key == string(level) {
					return n.slots[i].val, true
				}
			}
			return v, false
		}
		bit := digit(h, shift)
		if n.bitmap&bit == 0 {
			return v, false
		}
		s := &n.slots[bits.OnesCount32(n.bitmap&(bit-1))]
		if s.sub == nil {
			if s.key == string(level) {
				return s.val, true
			}
			return v, false
		}
		n = s.sub
	}
	return v, false
}

// each calls fn for every entry, in no particular order.
func (m *hmap[K, V]) each(fn func(K, V)) {
	switch {
	case m.n == 1:
		fn(m.key, m.val)
	case m.root != nil:
		m.root.each(fn)
	}
}

func (n *hnode[K, V]) each(fn func(K, V)) {
	for i := range n.slots {
		s := &n.slots[i]
		if s.sub != nil {
			s.sub.each(fn)
		} else {
			fn(s.key, s.val)
		}
	}
}

// set stores val for key (hash h) and reports whether key is new. The map
// value itself must be writable by the owner (it lives in a node of epoch e).
// hash recomputes the hash of keys already stored when two must be split.
func (m *hmap[K, V]) set(e, h uint64, key K, val V, hash func(K) uint64) (added bool) {
	switch m.n {
	case 0:
		m.key, m.val, m.n = key, val, 1
		return true
	case 1:
		if m.key == key {
			m.val = val
			return false
		}
		m.root = pair(e, 0, hash(m.key), m.key, m.val, h, key, val)
		var zk K
		var zv V
		m.key, m.val, m.n = zk, zv, 2 // drop references held inline
		return true
	}
	m.root, added = m.root.set(e, 0, h, key, val, hash)
	if added {
		m.n++
	}
	return added
}

func (n *hnode[K, V]) set(e uint64, shift uint, h uint64, key K, val V, hash func(K) uint64) (*hnode[K, V], bool) {
	if shift >= 64 {
		for i := range n.slots {
			if n.slots[i].key == key {
				n = n.edit(e, 0)
				n.slots[i].val = val
				return n, false
			}
		}
		n = n.edit(e, 1)
		n.slots = append(n.slots, hslot[K, V]{key: key, val: val})
		return n, true
	}
	bit := digit(h, shift)
	i := bits.OnesCount32(n.bitmap & (bit - 1))
	if n.bitmap&bit == 0 {
		n = n.edit(e, 1)
		n.slots = slices.Insert(n.slots, i, hslot[K, V]{key: key, val: val})
		n.bitmap |= bit
		return n, true
	}
	s := n.slots[i]
	if s.sub != nil {
		sub, added := s.sub.set(e, shift+hamtBits, h, key, val, hash)
		if sub != s.sub { // an unchanged pointer was edited in place: its parent is already ours
			n = n.edit(e, 0)
			n.slots[i].sub = sub
		}
		return n, added
	}
	if s.key == key {
		n = n.edit(e, 0)
		n.slots[i].val = val
		return n, false
	}
	sub := pair(e, shift+hamtBits, hash(s.key), s.key, s.val, h, key, val)
	n = n.edit(e, 0)
	n.slots[i] = hslot[K, V]{sub: sub}
	return n, true
}

// pair builds the subtree at shift holding two distinct keys.
func pair[K comparable, V any](e uint64, shift uint, h1 uint64, k1 K, v1 V, h2 uint64, k2 K, v2 V) *hnode[K, V] {
	if shift >= 64 {
		return newNode2(e, 0, hslot[K, V]{key: k1, val: v1}, hslot[K, V]{key: k2, val: v2})
	}
	b1, b2 := digit(h1, shift), digit(h2, shift)
	if b1 == b2 {
		n := newNode[K, V](e, b1, 1, 1)
		n.slots[0].sub = pair(e, shift+hamtBits, h1, k1, v1, h2, k2, v2)
		return n
	}
	if b1 > b2 {
		b1, b2, k1, k2, v1, v2 = b2, b1, k2, k1, v2, v1
	}
	return newNode2(e, b1|b2, hslot[K, V]{key: k1, val: v1}, hslot[K, V]{key: k2, val: v2})
}

// del removes key (hash h) and reports whether it was present. Like set, the
// map value must be writable by the owner.
func (m *hmap[K, V]) del(e, h uint64, key K) (removed bool) {
	switch m.n {
	case 0:
		return false
	case 1:
		if m.key != key {
			return false
		}
		var zero hmap[K, V]
		*m = zero
		return true
	}
	m.root, removed = m.root.del(e, 0, h, key)
	if !removed {
		return false
	}
	if m.n--; m.n == 1 {
		// The trie is canonical: the last entry sits in a root slot of its own.
		n := m.root
		for n.slots[0].sub != nil {
			n = n.slots[0].sub
		}
		m.key, m.val, m.root = n.slots[0].key, n.slots[0].val, nil
	}
	return true
}

// del returns n's replacement (nil when it became empty).
func (n *hnode[K, V]) del(e uint64, shift uint, h uint64, key K) (*hnode[K, V], bool) {
	if shift >= 64 {
		for i := range n.slots {
			if n.slots[i].key == key {
				if len(n.slots) == 1 {
					return nil, true
				}
				n = n.edit(e, 0)
				n.slots = slices.Delete(n.slots, i, i+1)
				return n, true
			}
		}
		return n, false
	}
	bit := digit(h, shift)
	if n.bitmap&bit == 0 {
		return n, false
	}
	i := bits.OnesCount32(n.bitmap & (bit - 1))
	s := n.slots[i]
	if s.sub != nil {
		sub, removed := s.sub.del(e, shift+hamtBits, h, key)
		switch {
		case !removed:
			return n, false
		case sub == nil:
			// The subtree emptied: drop its slot below.
		case len(sub.slots) == 1 && sub.slots[0].sub == nil:
			// A lone entry moves up, keeping the trie canonical (no chains
			// ending in a single entry), so memory follows the entry count.
			n = n.edit(e, 0)
			n.slots[i] = sub.slots[0]
			return n, true
		default:
			if sub != s.sub {
				n = n.edit(e, 0)
				n.slots[i].sub = sub
			}
			return n, true
		}
	} else if s.key != key {
		return n, false
	}
	if len(n.slots) == 1 {
		return nil, true
	}
	n = n.edit(e, 0)
	n.slots = slices.Delete(n.slots, i, i+1)
	n.bitmap &^= bit
	return n, true
}
