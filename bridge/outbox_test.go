package bridge

import (
	"fmt"
	"strings"
	"testing"
)

func mk(i int, qos byte) *entry {
	return &entry{topic: []byte("t"), payload: []byte(fmt.Sprint(i)), qos: qos, size: 10}
}

func payloads(o *outbox) string {
	var out []string
	for i := o.head; i < len(o.q); i++ {
		if e := o.q[i]; e.state != stDone {
			out = append(out, string(e.payload))
		}
	}
	return strings.Join(out, " ")
}

func TestOutboxDropOldest(t *testing.T) {
	o := newOutbox(3, 1<<20, false)
	var es []*entry
	for i := range 3 {
		es = append(es, mk(i, 1))
		if d := o.push(es[i]); len(d) != 0 {
			t.Fatalf("dropped %d early", len(d))
		}
	}
	// 0 is in flight: it is never dropped; 1 goes instead.
	e := o.peek()
	e.state, e.id = stSent, 1
	o.next++
	d := o.push(mk(3, 1))
	if len(d) != 1 || d[0] != es[1] || o.count != 3 {
		t.Fatalf("dropped %v, count %d", d, o.count)
	}
	if got := payloads(o); got != "0 2 3" {
		t.Fatalf("outbox %s", got)
	}
	if n, b := o.len(); n != 3 || b != 30 {
		t.Fatalf("len %d %d", n, b)
	}
}

func TestOutboxDropNewest(t *testing.T) {
	o := newOutbox(10, 25, true) // bytes bind first: 2 entries of 10
	o.push(mk(0, 1))
	o.push(mk(1, 1))
	d := o.push(mk(2, 1))
	if len(d) != 1 || string(d[0].payload) != "2" {
		t.Fatalf("dropped %v", d)
	}
	if got := payloads(o); got != "0 1" {
		t.Fatalf("outbox %s", got)
	}
}

func TestOutboxOnlyInflightFull(t *testing.T) {
	o := newOutbox(2, 1<<20, false)
	for i := range 2 {
		o.push(mk(i, 2))
		e := o.peek()
		e.state, e.id = stSent, uint16(i+1)
	}
	d := o.push(mk(9, 2))
	if len(d) != 1 || string(d[0].payload) != "9" {
		t.Fatalf("with only in-flight entries the new one must go: %v", d)
	}
}

func TestOutboxRewind(t *testing.T) {
	o := newOutbox(10, 1<<20, false)
	for i := range 4 {
		o.push(mk(i, 2))
	}
	// 0 released (PUBREC seen), 1 sent, 2 acked out of order, 3 queued.
	e0 := o.peek()
	e0.state, e0.id = stReleased, 1
	o.next++
	e1 := o.peek()
	e1.state, e1.id = stSent, 2
	o.next++
	e2 := o.peek()
	e2.state, e2.id = stSent, 3
	o.next++
	o.ack(e2)
	resend, accepted := o.rewind(true)
	if len(resend) != 2 || resend[0] != e0 || resend[1] != e1 || accepted != 0 {
		t.Fatalf("resend %v accepted %d", resend, accepted)
	}
	if e := o.peek(); e == nil || string(e.payload) != "3" {
		t.Fatalf("next %v", e)
	}
	// A new session at the remote: the released one was accepted there,
	// the sent one goes again as new.
	resend, accepted = o.rewind(false)
	if len(resend) != 0 || accepted != 1 || e1.state != stQueued || e1.id != 0 {
		t.Fatalf("resend %v accepted %d e1 %+v", resend, accepted, e1)
	}
	if e := o.peek(); e != e1 {
		t.Fatalf("first to send after a new session: %v", e)
	}
	if n, _ := o.len(); n != 2 {
		t.Fatalf("count %d", n)
	}
}

func TestOutboxCompacts(t *testing.T) {
	o := newOutbox(1<<20, 1<<30, false)
	for i := range 5000 {
		o.push(mk(i, 0))
	}
	for range 4000 {
		e := o.peek()
		o.ack(e)
	}
	if len(o.q)-o.head != 1000 || len(o.q) > 2*1000+1024 {
		t.Fatalf("head %d len %d: the front was not reclaimed", o.head, len(o.q))
	}
	if e := o.peek(); string(e.payload) != "4000" {
		t.Fatalf("next %s", e.payload)
	}
}

func BenchmarkOutboxPushAck(b *testing.B) {
	b.ReportAllocs()
	o := newOutbox(1<<20, 1<<30, false)
	e := &entry{topic: []byte("t"), payload: []byte("x"), qos: 1, size: 10}
	for b.Loop() {
		e.state = stQueued
		o.push(e)
		x := o.peek()
		x.state = stSent
		o.ack(x)
	}
}
