package topic

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// model is the reference the index is checked against: every subscription
// (filter as given, key) with its value, matched with the naive Match.
type model map[modelSub]string

type modelSub struct {
	filter string
	key    int
}

// expect returns, sorted, the lines collect must produce for topic.
func (m model) expect(topic string) []string {
	var out []string
	groups := map[string][]string{}
	for s, v := range m {
		group, inner, shared, err := ParseShared([]byte(s.filter))
		if err != nil {
			panic(fmt.Sprintf("model holds invalid filter %q: %v", s.filter, err))
		}
		switch {
		case shared && Match(inner, []byte(topic)):
			g := string(group) + "|" + string(inner)
			groups[g] = append(groups[g], fmt.Sprintf("%d=%s", s.key, v))
		case !shared && Match([]byte(s.filter), []byte(topic)):
			out = append(out, fmt.Sprintf("%d=%s", s.key, v))
		}
	}
	for g, members := range groups {
		slices.Sort(members)
		out = append(out, "G "+g+"|"+strings.Join(members, ","))
	}
	slices.Sort(out)
	return out
}

// collect matches topic on s and renders the result like model.expect.
func collect(s *Snapshot[int, string], topic string) []string {
	var out []string
	s.Match([]byte(topic), func(k int, v string) {
		out = append(out, fmt.Sprintf("%d=%s", k, v))
	}, func(g *Group[int, string]) {
		members := make([]string, g.Len())
		for i := range g.Len() {
			k, v := g.At(i)
			members[i] = fmt.Sprintf("%d=%s", k, v)
		}
		slices.Sort(members)
		out = append(out, "G "+g.Name()+"|"+g.Filter()+"|"+strings.Join(members, ","))
	})
	slices.Sort(out)
	return out
}

func checkMatch(t testing.TB, what string, s *Snapshot[int, string], m model, topic string) {
	t.Helper()
	got, want := collect(s, topic), m.expect(topic)
	if !slices.Equal(got, want) {
		t.Fatalf("%s: match %q\n got %q\nwant %q", what, topic, got, want)
	}
	if s.Len() != len(m) {
		t.Fatalf("%s: Len = %d, want %d", what, s.Len(), len(m))
	}
}

func TestIndexMatchTable(t *testing.T) {
	for _, tt := range matchTests {
		x := New[int, string]()
		if _, err := x.Subscribe(tt.filter, 1, "v"); err != nil {
			t.Fatalf("Subscribe(%q): %v", tt.filter, err)
		}
		if _, err := x.Subscribe("$share/g/"+tt.filter, 2, "w"); err != nil {
			t.Fatalf("Subscribe(shared %q): %v", tt.filter, err)
		}
		var subs, groups int
		x.Snapshot().Match([]byte(tt.name), func(int, string) { subs++ }, func(*Group[int, string]) { groups++ })
		want := 0
		if tt.want {
			want = 1
		}
		if subs != want || groups != want {
			t.Errorf("filter %q, topic %q: %d subscriptions and %d groups matched, want %d", tt.filter, tt.name, subs, groups, want)
		}
	}
}

func TestIndexSubscribeUnsubscribe(t *testing.T) {
	x := New[int, string]()
	m := model{}
	sub := func(filter string, key int, val string, wantAdded bool) {
		t.Helper()
		added, err := x.Subscribe(filter, key, val)
		if err != nil || added != wantAdded {
			t.Fatalf("Subscribe(%q, %d) = %v, %v; want %v, nil", filter, key, added, err, wantAdded)
		}
		m[modelSub{filter, key}] = val
	}
	unsub := func(filter string, key int, wantRemoved bool) {
		t.Helper()
		removed, err := x.Unsubscribe(filter, key)
		if err != nil || removed != wantRemoved {
			t.Fatalf("Unsubscribe(%q, %d) = %v, %v; want %v, nil", filter, key, removed, err, wantRemoved)
		}
		delete(m, modelSub{filter, key})
	}
	topics := []string{"a", "a/b", "a/b/c", "$SYS/x", "x", "a/", "/"}
	check := func(what string) {
		t.Helper()
		for _, topic := range topics {
			checkMatch(t, what, x.Snapshot(), m, topic)
		}
	}

	sub("a/b", 1, "qos1", true)
	sub("a/b", 1, "qos2", false) // same filter and key: value replaced
	sub("a/b", 2, "qos0", true)
	sub("a/+", 1, "plus", true) // same key, other filter: a second subscription
	sub("a/#", 3, "hash", true)
	sub("#", 4, "all", true)
	sub("$SYS/#", 4, "sys", true)
	sub("$share/g/a/+", 5, "s5", true)
	sub("$share/g/a/+", 6, "s6", true)
	sub("$share/g/a/+", 5, "s5b", false)
	sub("$share/h/a/+", 5, "h5", true) // same key in another group
	sub("$share/g/#", 7, "s7", true)
	check("after subscribe")

	unsub("a/b", 9, false)
	unsub("nothing/here", 1, false)
	unsub("$share/g/a/+", 9, false)
	unsub("$share/zz/a/+", 5, false)
	unsub("a/b", 1, true)
	unsub("a/b", 1, false)
	unsub("$share/g/a/+", 5, true)
	check("after unsubscribe")

	for s := range maps.Clone(m) {
		unsub(s.filter, s.key, true)
	}
	check("emptied")
	if x.root != nil {
		t.Fatalf("empty index keeps nodes: %+v", x.root)
	}
}

func TestIndexInvalidFilter(t *testing.T) {
	x := New[int, string]()
	before := x.Snapshot()
	for _, f := range []string{"", "a/#/b", "a+", "$share/g", "$share//a", "$share/g+/a", "a\x00", "\xED\xA0\x80"} {
		if _, err := x.Subscribe(f, 1, "v"); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("Subscribe(%q) error = %v, want ErrInvalidFilter", f, err)
		}
		if _, err := x.Unsubscribe(f, 1); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("Unsubscribe(%q) error = %v, want ErrInvalidFilter", f, err)
		}
	}
	if x.Snapshot() != before || x.root != nil {
		t.Fatal("an invalid filter changed the index")
	}
}

func TestIndexGroupOrder(t *testing.T) {
	x := New[int, string]()
	for k := 1; k <= 4; k++ {
		x.Subscribe("$share/g/a", k, fmt.Sprint("v", k))
	}
	x.Subscribe("$share/g/a", 2, "v2b")
	x.Unsubscribe("$share/g/a", 3)
	var got []string
	x.Snapshot().Match([]byte("a"), nil, func(g *Group[int, string]) {
		if g.Name() != "g" || g.Filter() != "a" {
			t.Errorf("group %q filter %q", g.Name(), g.Filter())
		}
		for i := range g.Len() {
			k, v := g.At(i)
			got = append(got, fmt.Sprint(k, "=", v))
		}
	})
	if want := []string{"1=v1", "2=v2b", "4=v4"}; !slices.Equal(got, want) {
		t.Fatalf("members %q, want %q (join order, replaced in place)", got, want)
	}
}

func TestIndexPrunes(t *testing.T) {
	x := New[int, string]()
	x.Subscribe("a/b/c/d", 1, "v")
	x.Subscribe("a/+/#", 1, "v")
	x.Subscribe("$share/g/a/x", 1, "v")
	x.Subscribe("a/y", 1, "v")
	x.Unsubscribe("a/b/c/d", 1)
	x.Unsubscribe("a/+/#", 1)
	x.Unsubscribe("$share/g/a/x", 1)
	a, ok := x.root.kids.get(x.hashLevel("a"), "a")
	// a and y collapse into one node (path compression).
	if !ok || a.extString() != "/y" || a.kids.n != 0 || a.plus != nil || a.subs.n != 1 || x.root.kids.n != 1 {
		t.Fatalf("only a/y should remain: root kids %d, a %+v", x.root.kids.n, a)
	}
	x.Unsubscribe("a/y", 1)
	if x.root != nil || x.Snapshot().Len() != 0 {
		t.Fatal("index not empty")
	}
}

func TestIndexBatch(t *testing.T) {
	x := New[int, string]()
	x.Subscribe("a", 1, "v")
	before := x.Snapshot()
	x.Batch(func() {
		x.Subscribe("a", 2, "v")
		x.Batch(func() { x.Subscribe("b", 3, "v") })
		if x.Snapshot() != before {
			t.Error("a nested batch published early")
		}
		x.Unsubscribe("a", 1)
	})
	after := x.Snapshot()
	m := model{{"a", 2}: "v", {"b", 3}: "v"}
	checkMatch(t, "after batch", after, m, "a")
	checkMatch(t, "after batch", after, m, "b")
	checkMatch(t, "before batch", before, model{{"a", 1}: "v"}, "a")
	x.Batch(func() {})
	if x.Snapshot() != after {
		t.Error("an empty batch published a new snapshot")
	}
}

// TestIndexAgainstReference is the property test: random subscribes and
// unsubscribes, single and batched, compared after every step with the naive
// matcher over a model, with full hashes and with hashes cut to a few bits;
// snapshots kept along the way must still match their own model at the end.
func TestIndexAgainstReference(t *testing.T) {
	for _, mask := range []uint64{^uint64(0), 0x3, 0} {
		t.Run(fmt.Sprintf("mask=%x", mask), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, mask))
			x := newIndex[int, string](mask)
			m := model{}
			type frozen struct {
				snap *Snapshot[int, string]
				m    model
			}
			var old []frozen
			step := func(i int) {
				f, key := randFilter(rng), rng.IntN(4)
				if rng.IntN(3) == 0 {
					removed, err := x.Unsubscribe(f, key)
					_, had := m[modelSub{f, key}]
					if (err == nil) != (ValidFilter([]byte(f)) == nil) || removed != had {
						t.Fatalf("Unsubscribe(%q, %d) = %v, %v; had %v", f, key, removed, err, had)
					}
					delete(m, modelSub{f, key})
					return
				}
				val := fmt.Sprint(f, "#", i)
				added, err := x.Subscribe(f, key, val)
				if verr := ValidFilter([]byte(f)); err != verr {
					t.Fatalf("Subscribe(%q) error %v, ValidFilter says %v", f, err, verr)
				}
				if err != nil {
					return
				}
				if _, had := m[modelSub{f, key}]; added == had {
					t.Fatalf("Subscribe(%q, %d) added = %v, had %v", f, key, added, had)
				}
				m[modelSub{f, key}] = val
			}
			steps := 1000
			if testing.Short() {
				steps = 200
			}
			for i := range steps {
				if rng.IntN(10) == 0 {
					x.Batch(func() {
						for j := range rng.IntN(20) {
							step(i*100 + j)
						}
					})
				} else {
					step(i)
				}
				for range 2 {
					checkMatch(t, "live", x.Snapshot(), m, randTopic(rng))
				}
				if i%40 == 0 {
					old = append(old, frozen{x.Snapshot(), maps.Clone(m)})
				}
			}
			for _, o := range old {
				for range 20 {
					checkMatch(t, "old snapshot", o.snap, o.m, randTopic(rng))
				}
			}
			for s := range m {
				x.Unsubscribe(s.filter, s.key)
			}
			if x.root != nil || x.Snapshot().Len() != 0 {
				t.Fatal("index not empty after removing every subscription")
			}
		})
	}
}

var (
	filterLevels = []string{"a", "b", "c", "", "$x", "+", "+", "#", "#"}
	topicLevels  = []string{"a", "b", "c", "", "$x"}
	shareNames   = []string{"g", "h"}
)

func randFilter(rng *rand.Rand) string {
	levels := make([]string, 1+rng.IntN(4))
	for i := range levels {
		levels[i] = filterLevels[rng.IntN(len(filterLevels))]
	}
	f := strings.Join(levels, "/")
	if rng.IntN(5) == 0 {
		f = "$share/" + shareNames[rng.IntN(len(shareNames))] + "/" + f
	}
	return f
}

func randTopic(rng *rand.Rand) string {
	levels := make([]string, 1+rng.IntN(5))
	for i := range levels {
		levels[i] = topicLevels[rng.IntN(len(topicLevels))]
	}
	return strings.Join(levels, "/")
}

// TestIndexConcurrentReaders runs readers against snapshots while the owner
// keeps changing the index; run it with -race. Each reader checks that a
// permanent subscription is always seen and that a snapshot gives the same
// answer twice.
func TestIndexConcurrentReaders(t *testing.T) {
	x := New[int, string]()
	x.Subscribe("stable/#", -1, "stable")
	var done atomic.Bool
	var wg sync.WaitGroup
	var matches atomic.Int64
	for r := range 4 {
		wg.Add(1)
		go func() { // exits when done is set
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 99))
			for !done.Load() {
				s := x.Snapshot()
				stable := false
				s.Match([]byte("stable/x"), func(k int, v string) { stable = stable || (k == -1 && v == "stable") }, nil)
				if !stable {
					t.Error("permanent subscription not matched")
					return
				}
				topic := randTopic(rng)
				first := collect(s, topic)
				if again := collect(s, topic); !slices.Equal(first, again) {
					t.Errorf("snapshot changed under a reader: %q then %q", first, again)
					return
				}
				matches.Add(int64(len(first)))
			}
		}()
	}
	rng := rand.New(rand.NewPCG(3, 4))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for i := range n {
		f, key := randFilter(rng), rng.IntN(8)
		if rng.IntN(2) == 0 {
			x.Unsubscribe(f, key)
		} else {
			x.Subscribe(f, key, fmt.Sprint(i))
		}
	}
	done.Store(true)
	wg.Wait()
	t.Logf("readers saw %d matches", matches.Load())
}

func TestIndexMatchAllocs(t *testing.T) {
	x := New[int, string]()
	for _, f := range []string{"site/1/device/2/temp", "site/1/+/2/temp", "site/1/#", "$share/g/site/1/device/+/temp", "#"} {
		for k := range 3 {
			x.Subscribe(f, k, "v")
		}
	}
	s := x.Snapshot()
	topic := []byte("site/1/device/2/temp")
	var subs, members int
	allocs := testing.AllocsPerRun(1000, func() {
		s.Match(topic, func(int, string) { subs++ }, func(g *Group[int, string]) { members += g.Len() })
	})
	if allocs != 0 {
		t.Fatalf("Match allocates %v times", allocs)
	}
	if subs != 12*1001 || members != 3*1001 {
		t.Fatalf("matched %d subscriptions and %d members over 1001 runs", subs, members)
	}
}

func TestSnapshotIsolation(t *testing.T) {
	x := New[int, string]()
	x.Subscribe("a/b", 1, "v1")
	x.Subscribe("$share/g/a/+", 2, "v2")
	s1 := x.Snapshot()
	x.Subscribe("a/b", 1, "changed")
	x.Subscribe("a/b", 3, "new")
	x.Subscribe("$share/g/a/+", 4, "v4")
	x.Unsubscribe("$share/g/a/+", 2)
	m1 := model{{"a/b", 1}: "v1", {"$share/g/a/+", 2}: "v2"}
	checkMatch(t, "first snapshot", s1, m1, "a/b")
	m2 := model{{"a/b", 1}: "changed", {"a/b", 3}: "new", {"$share/g/a/+", 4}: "v4"}
	checkMatch(t, "latest snapshot", x.Snapshot(), m2, "a/b")
}

// TestIndexWideFrontier subscribes every filter over {a, +} six levels deep:
// the topic a/a/a/a/a/a reaches 64 nodes at the last level, more than the
// breadth-first frontier holds, so part of the match runs depth first.
func TestIndexWideFrontier(t *testing.T) {
	x := New[int, string]()
	m := model{}
	x.Batch(func() {
		for i := range 1 << 6 {
			levels := make([]string, 6)
			for l := range levels {
				levels[l] = "a"
				if i>>l&1 == 1 {
					levels[l] = "+"
				}
			}
			f := strings.Join(levels, "/")
			x.Subscribe(f, i, f)
			m[modelSub{f, i}] = f
			x.Subscribe(f+"/#", i, f+"/#")
			m[modelSub{f + "/#", i}] = f + "/#"
		}
	})
	for _, topic := range []string{"a/a/a/a/a/a", "a/a/a/a/a/a/b", "a/b/a/b/a/b", "a/a/a/a/a"} {
		checkMatch(t, "wide", x.Snapshot(), m, topic)
	}
}
