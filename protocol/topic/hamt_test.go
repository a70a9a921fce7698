package topic

import (
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"testing"
)

// TestHmap checks the persistent map against a Go map, with full hashes and
// with hashes cut to a few bits (deep chains and collision lists), and checks
// that maps published at earlier epochs never change.
func TestHmap(t *testing.T) {
	for _, mask := range []uint64{^uint64(0), 0x3f, 0x1, 0} {
		seed := maphash.MakeSeed()
		hash := func(k int) uint64 { return maphash.Comparable(seed, k) & mask }
		rng := rand.New(rand.NewPCG(1, mask))
		var m hmap[int, int]
		want := map[int]int{}
		type frozen struct {
			m    hmap[int, int]
			want map[int]int
		}
		var old []frozen
		epoch := uint64(1)
		for step := range 4000 {
			k := rng.IntN(300)
			if rng.IntN(3) == 0 {
				_, had := want[k]
				if got := m.del(epoch, hash(k), k); got != had {
					t.Fatalf("mask %x: del(%d) = %v, want %v", mask, k, got, had)
				}
				delete(want, k)
			} else {
				_, had := want[k]
				if got := m.set(epoch, hash(k), k, step, hash); got == had {
					t.Fatalf("mask %x: set(%d) added = %v, want %v", mask, k, got, !had)
				}
				want[k] = step
			}
			if rng.IntN(7) == 0 { // publish: freeze this version
				old = append(old, frozen{m, maps.Clone(want)})
				epoch++
			}
		}
		old = append(old, frozen{m, want})
		for i, o := range old {
			if o.m.n != len(o.want) {
				t.Fatalf("mask %x version %d: n = %d, want %d", mask, i, o.m.n, len(o.want))
			}
			seen := 0
			o.m.each(func(k, v int) {
				seen++
				if o.want[k] != v {
					t.Fatalf("mask %x version %d: each %d=%d, want %d", mask, i, k, v, o.want[k])
				}
			})
			if seen != len(o.want) {
				t.Fatalf("mask %x version %d: each saw %d entries, want %d", mask, i, seen, len(o.want))
			}
			for k := range 300 {
				v, ok := o.m.get(hash(k), k)
				if wv, wok := o.want[k]; v != wv || ok != wok {
					t.Fatalf("mask %x version %d: get(%d) = %d, %v; want %d, %v", mask, i, k, v, ok, wv, wok)
				}
			}
		}
		epoch++
		for k := range 300 {
			m.del(epoch, hash(k), k)
		}
		if m.root != nil || m.n != 0 {
			t.Fatalf("mask %x: emptied map has root %v, n %d", mask, m.root, m.n)
		}
	}
}

// TestHmapCanonical checks that deleting keys collapses chains: a map's
// shape depends on its keys only, not on the history that built it.
func TestHmapCanonical(t *testing.T) {
	for _, mask := range []uint64{^uint64(0), 0x7, 0} {
		seed := maphash.MakeSeed()
		hash := func(k int) uint64 { return maphash.Comparable(seed, k) & mask }
		var a, b hmap[int, int]
		for k := range 100 {
			a.set(1, hash(k), k, k, hash)
		}
		for k := 50; k < 100; k++ {
			a.del(1, hash(k), k)
		}
		for k := range 50 {
			b.set(1, hash(k), k, k, hash)
		}
		if sa, sb := shape(a.root), shape(b.root); sa != sb {
			t.Fatalf("mask %x: shape after deletes %d nodes, built directly %d nodes", mask, sa, sb)
		}
	}
}

func shape[K comparable, V any](n *hnode[K, V]) int {
	if n == nil {
		return 0
	}
	c := 1
	for _, s := range n.slots {
		if s.sub != nil {
			c += shape(s.sub)
		}
	}
	return c
}

func TestGetLevel(t *testing.T) {
	seed := maphash.MakeSeed()
	hash := func(s string) uint64 { return maphash.String(seed, s) }
	var m hmap[string, int]
	for i, s := range []string{"a", "b", "", "site", "\xC3\xA9"} {
		m.set(1, hash(s), s, i+1, hash)
	}
	for _, s := range []string{"a", "b", "", "site", "\xC3\xA9", "c", "sit"} {
		want, wok := m.get(hash(s), s)
		got, ok := getLevel(&m, maphash.Bytes(seed, []byte(s)), []byte(s))
		if got != want || ok != wok {
			t.Errorf("getLevel(%q) = %d, %v; want %d, %v", s, got, ok, want, wok)
		}
	}
}
