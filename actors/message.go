package actors

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/transport"
)

// Message is an application message inside the broker. It is immutable
// once created and shared by pointer among every subscriber it reaches.
type Message struct {
	Topic   []byte
	Payload []byte
	QoS     byte
	Retain  bool
	// Props holds only the properties forwarded to subscribers: Payload
	// Format Indicator, Content Type, Response Topic, Correlation Data and
	// User Properties, unchanged [MQTT-3.3.2-4] [MQTT-3.3.2-15]
	// [MQTT-3.3.2-17] [MQTT-3.3.2-20]. Message Expiry is kept in Expires.
	// Nil when the message has none of them (most do not): the block is
	// some 330 bytes. Read it through properties.
	Props   *protocol.Properties
	From    string    // publishing client id, for No Local; "" from the broker
	Expires time.Time // zero: never expires
	size    int

	// heads caches the encoded PUBLISH header (everything before the
	// payload) per (QoS, v5 or not, RETAIN), with packet id 1 as a
	// placeholder; set once by whichever session needs it first.
	heads [12]atomic.Pointer[[]byte]
}

// head returns the cached header template for (qos, v, retain), encoding
// it on first use. Safe for concurrent use; the result must not be
// modified.
func (m *Message) head(qos byte, v protocol.Version, retain bool) ([]byte, error) {
	i := int(qos) * 4
	if v >= protocol.Version5 {
		i += 2
	}
	if retain {
		i++
	}
	if p := m.heads[i].Load(); p != nil {
		return *p, nil
	}
	pub := &protocol.Publish{Topic: m.Topic, Payload: m.Payload, QoS: qos, Retain: retain}
	if qos > 0 {
		pub.PacketID = 1
	}
	if v >= protocol.Version5 {
		pub.Props = *m.properties()
	}
	h, err := pub.AppendHeaderOnly(make([]byte, 0, pub.Len(v)-len(pub.Payload)), v)
	if err != nil {
		return nil, err
	}
	m.heads[i].Store(&h)
	return h, nil
}

// idBack is where the packet id sits in a cached header, counted from the
// header's end: v5 puts the properties after it.
func (m *Message) idBack(v protocol.Version) int {
	if v >= protocol.Version5 {
		return 2 + m.properties().Len(protocol.TypePublish)
	}
	return 2
}

// newMessage builds a Message from a decoded PUBLISH whose slices the
// caller hands over (they must not alias a reused buffer).
func newMessage(p *protocol.Publish, from string, now time.Time) *Message {
	m := &Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, From: from}
	src := &p.Props
	var fwd *protocol.Properties
	for _, id := range forwardedProps {
		if src.Has(id) {
			if fwd == nil {
				fwd = new(protocol.Properties)
			}
			fwd.Set(id)
		}
	}
	if fwd == nil && len(src.User) > 0 {
		fwd = new(protocol.Properties)
	}
	if fwd != nil {
		fwd.PayloadFormat = src.PayloadFormat
		fwd.ContentType = src.ContentType
		fwd.ResponseTopic = src.ResponseTopic
		fwd.CorrelationData = src.CorrelationData
		fwd.User = src.User
		m.Props = fwd
	}
	if src.Has(protocol.PropMessageExpiry) {
		m.Expires = now.Add(time.Duration(src.MessageExpiry) * time.Second)
	}
	m.size = 64 + len(m.Topic) + len(m.Payload) + len(src.ContentType) + len(src.ResponseTopic) +
		len(src.CorrelationData)
	for _, u := range src.User {
		m.size += 4 + len(u.Key) + len(u.Value)
	}
	return m
}

// forwardedProps are the PUBLISH properties a Message keeps besides User
// Properties.
var forwardedProps = [...]protocol.PropID{protocol.PropPayloadFormat, protocol.PropContentType,
	protocol.PropResponseTopic, protocol.PropCorrelationData}

// noProps is the empty properties block of a Message without any.
var noProps protocol.Properties

// properties returns m's forwarded properties, or an empty block; the
// result must not be modified.
func (m *Message) properties() *protocol.Properties {
	if m.Props != nil {
		return m.Props
	}
	return &noProps
}

// expired reports whether m's Message Expiry Interval has passed.
func (m *Message) expired(now time.Time) bool {
	return !m.Expires.IsZero() && !now.Before(m.Expires)
}

// remainingExpiry is the Message Expiry Interval to forward: the time left,
// rounded up, in seconds [MQTT-3.3.2-6].
func (m *Message) remainingExpiry(now time.Time) (uint32, bool) {
	if m.Expires.IsZero() {
		return 0, false
	}
	d := m.Expires.Sub(now)
	if d <= 0 {
		return 0, true
	}
	return uint32((d + time.Second - 1) / time.Second), true
}

// connHandle is what a session knows of the connection it is attached to.
type connHandle struct {
	pid        *actor.PID
	out        *transport.Outbound
	gen        uint64 // pipe id: tells this connection's messages from an older one's
	version    protocol.Version
	receiveMax int    // the client's Receive Maximum
	maxPacket  int    // the client's Maximum Packet Size; 0: no limit beyond the protocol's
	aliasMax   uint16 // the client's Topic Alias Maximum: aliases the broker may use toward it
	clientID   string
	remote     string
	// bridge: the CONNECT had Mosquitto's bridge bit (a 3.1/3.1.1 bridge):
	// its subscriptions behave as No Local and Retain As Published, so a
	// bridge never gets back what it published and retained flags cross.
	bridge bool
	// quota counts the client's QoS 1/2 PUBLISHes not yet answered with
	// PUBACK or PUBCOMP: the connection adds, the session subtracts; more
	// than our Receive Maximum is DISCONNECT 0x93 [MQTT-3.3.4-7].
	quota *atomic.Int32

	// link settles, once, the race between the session attaching this
	// connection and the connection actor stopping before it learnt its
	// session (its attached is then lost with it, and it cannot detach):
	// whichever side moves it from linkNone second acts. The session
	// stores session before its move.
	link    atomic.Int32
	session *actor.PID
	// aliases are the outbound topic aliases toward this connection (they
	// live as long as it: 3.3.2.3.4); the session's alone.
	aliases map[string]uint16
}

// connHandle.link states.
const (
	linkNone     int32 = iota
	linkAttached       // the session attached; the connection, if it stops unattached, sends connGone
	linkGone           // the connection actor stopped unattached; the session sends itself connGone
)

// Messages between actors. Commands are imperative, events past tense.

// attach asks a session to take a new connection (sent by the connection
// actor through the session registry).
type attach struct {
	conn       *connHandle
	cleanStart bool
	expiry     time.Duration // session expiry after the connection closes
	will       *Message      // nil: no will
	willDelay  time.Duration
	connack    *protocol.Connack // to send first, with Session Present filled in by the session
}

// attached tells the connection actor which session it feeds.
type attached struct {
	session *actor.PID
	mb      *mailbox // the session's: see conn.toSession
	present bool
}

// inbound carries a decoded packet (its slices owned, copied out of the
// read buffer) from the reader goroutine to the connection actor, which
// forwards the same message to the session. credit is released by the
// session once the packet is processed (reader credit); cost is what it
// holds.
type inbound struct {
	gen    uint64
	pkt    protocol.Packet
	credit *credit
	cost   int64
}

// detached tells a session its connection closed.
type detached struct {
	gen      uint64
	sendWill bool           // abnormal close, or v5 DISCONNECT 0x04
	expiry   *time.Duration // v5 DISCONNECT may change the session expiry
}

// kick tells a connection actor to send DISCONNECT with a reason (v5) and
// close; the session is kept.
type kick struct {
	reason protocol.ReasonCode
	why    string
}

// deliver is one routed message for one session.
type deliver struct {
	msg    *Message
	qos    byte       // min(publish QoS, subscription QoS)
	subIDs []int      // v5 Subscription Identifiers of the matching subscriptions
	retain bool       // the RETAIN flag to send (Retain As Published, or a retained message on subscribe)
	shared *sharedRef // set when delivered through a shared subscription group
	cost   int64      // bytes counted in the session's backlog by the router
}

// sharedRef names a shared subscription group.
type sharedRef struct{ name, filter string }

// endSession tells a session to end now (clean start replaced it); the
// session kicks its connection with reason and stops.
type endSession struct {
	reason protocol.ReasonCode
}

// sessionEnded tells the registry a session has stopped.
type sessionEnded struct {
	clientID string
	pid      *actor.PID
}

// timerFired is a session or connection timer; kind says which.
type timerFired struct {
	kind timerKind
	seq  uint32
}

type timerKind uint8

const (
	timerWill timerKind = iota + 1
	timerExpiry
	timerRetry
)
