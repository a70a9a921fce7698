package actors

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/nanoactor/nanoactor/protocol/topic"
)

// The trie gives exactly what testing every retained topic with
// topic.Match gives, for random topics and filters ($ topics, empty
// levels, + and # included), through sets, replacements and deletes.
func TestRetainedStoreMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	levels := []string{"a", "b", "c", "", "$SYS", "x"}
	randTopic := func() string {
		n := 1 + rng.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = levels[rng.IntN(len(levels))]
			if i > 0 && parts[i] == "$SYS" {
				parts[i] = "s"
			}
		}
		return strings.Join(parts, "/")
	}
	randFilter := func() string {
		n := 1 + rng.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			switch r := rng.IntN(6); {
			case r == 0:
				parts[i] = "+"
			case r == 1 && i == n-1:
				parts[i] = "#"
			default:
				parts[i] = levels[rng.IntN(len(levels))]
			}
		}
		return strings.Join(parts, "/")
	}
	var s retainedStore
	naive := map[string]*Message{}
	for round := range 20000 {
		tp := randTopic()
		if rng.IntN(3) == 0 {
			s.del(tp)
			delete(naive, tp)
		} else {
			m := &Message{Topic: []byte(tp), Payload: []byte(fmt.Sprint(round))}
			s.set(tp, m)
			naive[tp] = m
		}
		if got := s.get(tp); got != naive[tp] {
			t.Fatalf("get %q", tp)
		}
		f := randFilter()
		if topic.ValidFilter([]byte(f)) != nil {
			continue
		}
		var got, want []string
		s.match(f, func(m *Message) { got = append(got, string(m.Topic)) })
		for name := range naive {
			if topic.Match([]byte(f), []byte(name)) {
				want = append(want, name)
			}
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("filter %q: got %q, want %q", f, got, want)
		}
	}
	bytes := 0
	for _, m := range naive {
		bytes += len(m.Payload)
	}
	if s.n != len(naive) || s.bytes != bytes {
		t.Fatalf("count %d bytes %d, want %d %d", s.n, s.bytes, len(naive), bytes)
	}
	for name := range naive {
		s.del(name)
	}
	if len(s.root.children) != 0 || s.n != 0 || s.bytes != 0 {
		t.Fatalf("not pruned: %d children, n %d, bytes %d", len(s.root.children), s.n, s.bytes)
	}
}

// BenchmarkRetainedMatch: a subscription's retained lookup among 100,000
// retained topics (building/floor/room/sensor), for an exact filter and a
// narrow wildcard one.
func BenchmarkRetainedMatch(b *testing.B) {
	var s retainedStore
	for i := range 100000 {
		tp := fmt.Sprintf("b%d/f%d/r%d/s%d", i%10, i/10%10, i/100%100, i/10000)
		s.set(tp, &Message{Topic: []byte(tp), Payload: []byte("x")})
	}
	for _, f := range []string{"b3/f4/r55/s7", "b3/f4/+/s7", "b3/f4/#"} {
		b.Run(f, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				s.match(f, func(*Message) { n++ })
			}
		})
	}
}
