package topic_test

import (
	"errors"
	"fmt"

	"github.com/nanoactor/nanoactor/protocol/topic"
)

// A session id as key and per-subscription options as value.
type opts struct{ qos byte }

func ExampleIndex() {
	x := topic.New[string, opts]()

	// Owner goroutine (the topic actor): apply changes.
	x.Subscribe("site/+/temp", "alice", opts{qos: 1})
	x.Subscribe("site/#", "bob", opts{qos: 0})
	x.Subscribe("$share/workers/site/+/temp", "w1", opts{qos: 1})
	x.Subscribe("$share/workers/site/+/temp", "w2", opts{qos: 1})

	// Any goroutine: match a PUBLISH against the latest snapshot.
	x.Snapshot().Match([]byte("site/7/temp"),
		func(session string, o opts) { fmt.Println("deliver to", session, "qos", o.qos) },
		func(g *topic.Group[string, opts]) {
			session, _ := g.At(0) // the broker picks the member: round-robin, random, ...
			fmt.Println("group", g.Name(), "on", g.Filter(), "has", g.Len(), "members; deliver to", session)
		})
	// Unordered output:
	// deliver to alice qos 1
	// deliver to bob qos 0
	// group workers on site/+/temp has 2 members; deliver to w1
}

func ExampleValidName() {
	for _, name := range []string{"site/7/temp", "site/+/temp", "bad\xED\xA0\x80"} {
		err := topic.ValidName([]byte(name))
		fmt.Printf("%q: %v (malformed: %v)\n", name, err, errors.Is(err, topic.ErrMalformedUTF8))
	}
	// Output:
	// "site/7/temp": <nil> (malformed: false)
	// "site/+/temp": invalid topic name: contains wildcard '+' or '#' (malformed: false)
	// "bad\xed\xa0\x80": invalid topic name: malformed utf-8 string (malformed: true)
}
