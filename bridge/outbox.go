package bridge

import (
	"time"

	"github.com/nanoactor/nanoactor/protocol"
)

// Entry states in the outbox.
const (
	stQueued   uint8 = iota // not sent on the current link yet
	stSent                  // PUBLISH sent (QoS 1/2), no PUBACK / PUBREC yet
	stReleased              // PUBREC received and PUBREL sent (QoS 2), no PUBCOMP yet
	stDone                  // acknowledged or dropped: waiting to be popped
)

// entry is one message in the outbox, already mapped to its remote topic.
type entry struct {
	topic   []byte
	payload []byte
	props   protocol.Properties // v5 properties forwarded (no alias, no subscription ids)
	qos     byte
	retain  bool
	state   uint8
	sentAny bool      // sent on some link before: resent with DUP
	id      uint16    // packet identifier while stSent / stReleased
	arrived time.Time // for Message Expiry
	size    int64     // bytes charged to the outbox
}

// outbox is a bridge's ordered, bounded queue of messages for the remote.
// Messages go out in order; a QoS 1/2 message leaves it only when the
// remote has acknowledged it (PUBACK, or PUBREC then PUBCOMP); a QoS 0
// message leaves it when it is handed to the link's writer. It is bounded
// in messages and in bytes; a full outbox drops by policy (see push).
//
// The outbox is owned by the bridge actor and outlives links and actor
// restarts. It is not safe for concurrent use.
type outbox struct {
	q        []*entry // q[head:] are the live entries, in arrival order
	head     int
	next     int // index in q of the first stQueued entry to consider
	count    int // entries not stDone
	bytes    int64
	maxCount int
	maxBytes int64
	dropNew  bool // policy: drop the arriving message instead of the oldest unsent
}

func newOutbox(maxCount int, maxBytes int64, dropNewest bool) *outbox {
	return &outbox{maxCount: maxCount, maxBytes: maxBytes, dropNew: dropNewest}
}

// push appends e. When the outbox is full it drops, by policy, either e
// itself or the oldest entries not yet sent, until e fits; entries sent and
// not yet acknowledged are never dropped, so when only those fill the
// outbox e is dropped. It returns the dropped entries (e among them when it
// was not kept).
func (o *outbox) push(e *entry) (dropped []*entry) {
	for o.full(e.size) {
		if o.dropNew {
			return append(dropped, e)
		}
		victim := o.oldestQueued()
		if victim == nil {
			return append(dropped, e)
		}
		o.finish(victim)
		dropped = append(dropped, victim)
	}
	o.compact()
	e.state = stQueued
	o.q = append(o.q, e)
	o.count++
	o.bytes += e.size
	return dropped
}

func (o *outbox) full(size int64) bool {
	return o.count > 0 && (o.count+1 > o.maxCount || o.bytes+size > o.maxBytes)
}

// oldestQueued returns the first entry not in flight, or nil.
func (o *outbox) oldestQueued() *entry {
	for i := o.head; i < len(o.q); i++ {
		if e := o.q[i]; e.state == stQueued {
			return e
		}
	}
	return nil
}

// peek returns the next entry to send on the current link, or nil.
func (o *outbox) peek() *entry {
	for ; o.next < len(o.q); o.next++ {
		if o.next < o.head {
			o.next = o.head
		}
		if o.q[o.next].state == stQueued {
			return o.q[o.next]
		}
	}
	return nil
}

// ack finishes e (acknowledged, expired or too large) and pops what is done.
func (o *outbox) ack(e *entry) {
	o.finish(e)
	o.compact()
}

// finish marks e acknowledged or dropped and releases its charge; compact
// pops it later.
func (o *outbox) finish(e *entry) {
	if e.state == stDone {
		return
	}
	e.state = stDone
	o.count--
	o.bytes -= e.size
	e.payload, e.topic, e.props = nil, nil, protocol.Properties{}
}

// compact pops finished entries off the front and reclaims the backing
// array once half of it is dead.
func (o *outbox) compact() {
	for o.head < len(o.q) && o.q[o.head].state == stDone {
		o.q[o.head] = nil
		o.head++
	}
	if o.head == len(o.q) {
		o.q, o.head, o.next = o.q[:0], 0, 0
		return
	}
	if o.head > 1024 && o.head > len(o.q)/2 {
		n := copy(o.q, o.q[o.head:])
		clear(o.q[n:])
		o.q = o.q[:n]
		o.next -= o.head
		if o.next < 0 {
			o.next = 0
		}
		o.head = 0
	}
}

// rewind is called when a new link comes up: every entry not done goes
// back to be sent again in order. With the remote's session kept
// (sessionPresent), sent entries are resent as DUP PUBLISH with the same
// packet identifier and released ones as PUBREL; they keep their
// identifiers. Without it the remote knows nothing of them: released
// entries were accepted by the remote and are finished (returned in
// accepted), sent ones go again as new messages.
func (o *outbox) rewind(sessionPresent bool) (resend []*entry, accepted int) {
	for i := o.head; i < len(o.q); i++ {
		e := o.q[i]
		switch e.state {
		case stSent:
			if sessionPresent {
				resend = append(resend, e)
			} else {
				e.state, e.id = stQueued, 0
			}
		case stReleased:
			if sessionPresent {
				resend = append(resend, e)
			} else {
				e.id = 0
				o.finish(e)
				accepted++
			}
		}
	}
	o.compact()
	o.next = o.head
	return resend, accepted
}

// len returns the entries not finished and their bytes.
func (o *outbox) len() (int, int64) { return o.count, o.bytes }
