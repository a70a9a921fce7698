package bridge

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/nanoactor/nanoactor/actors"
	"github.com/nanoactor/nanoactor/config"
	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/protocol/topic"
	"github.com/nanoactor/nanoactor/transport"
)

// Tunables that are not worth a configuration key.
const (
	// linkPending bounds the bytes waiting in a link's writer. The pump
	// stops feeding a remote link past half of it and resumes shortly.
	linkPending = 8 << 20
	// readerCredit bounds the bytes a link's reader has handed to the actor
	// and the actor has not finished with.
	readerCredit = 4 << 20
	// tickEvery drives keepalive pings, status lines and retries.
	tickEvery = time.Second
	// statusEvery is the period of the "bridge status" log line.
	statusEvery = time.Minute
	// localSessionExpiry keeps the bridge's session in its own broker
	// across a local link drop (a restart of the bridge actor).
	localSessionExpiry = 3600
	// dropLogEvery rate-limits the drop log line per bridge.
	dropLogEvery = 10 * time.Second
	// pumpRetry is how soon a pump stopped by a full writer tries again.
	pumpRetry = 5 * time.Millisecond
	// maxWindow caps the messages in flight on a link below the 65535
	// packet identifiers, so some are always free for SUBSCRIBE.
	maxWindow = 65000
)

// Options configure a Bridge.
type Options struct {
	Config config.Bridge
	// Node is the local broker's node name (logs).
	Node string
	// Broker is the local broker the bridge is a client of.
	Broker *actors.Broker
	// MaxPacketSize is the largest packet the bridge accepts, from either
	// side (the local broker's max_packet_size).
	MaxPacketSize int
	Logger        *slog.Logger
}

// Status is a snapshot of a bridge's counters.
type Status struct {
	Name        string
	Connected   bool   // the link to the remote is up
	Outbox      int    // messages in the outbox (queued or awaiting acknowledgement)
	OutboxBytes int64  // their bytes
	Sent        uint64 // PUBLISHes sent to the remote (resends included)
	Acked       uint64 // messages the remote acknowledged (QoS 0: handed to the link)
	Dropped     uint64 // messages dropped: full outbox, expired, too large, refused
	Received    uint64 // messages from the remote published locally
	Reconnects  uint64 // links to the remote brought up after the first
}

// rule is one [[bridge.topic]] entry, compiled.
type rule struct {
	cfg          config.BridgeTopic
	out, in      bool
	localFilter  []byte
	remoteFilter []byte
}

// link is one connection, to the remote or to the local broker.
type link struct {
	nc     net.Conn
	out    *transport.Outbound
	v      protocol.Version
	credit *credit
	up     time.Time
}

// inMsg is a message from the remote on its way into the local broker.
type inMsg struct {
	pub      protocol.Publish
	remoteID uint16 // its packet identifier at the remote (QoS 1/2)
	epoch    uint64 // the remote session it came in
	localID  uint16
	acked    bool // local PUBREC received (QoS 2)
	seq      uint64
	cr       *credit
	n        int64
}

// relState is the receive state of a QoS 1/2 message from the remote,
// kept across links as long as the remote keeps the session.
type relState struct {
	received bool // delivered to the local broker; PUBACK / PUBREC sent
}

// Bridge is one configured bridge. Its state lives here, outside the actor
// instance, so a restart of the actor keeps the outbox and the QoS 2
// exchanges; everything but the atomics is owned by the actor goroutine.
type Bridge struct {
	cfg      config.Bridge
	node     string
	log      *slog.Logger
	scheme   string
	hostport string
	tls      *tls.Config
	rules    []rule
	maxPkt   int
	broker   *actors.Broker
	pl       *pipeListener
	sys      *actor.ActorSystem
	pid      atomic.Pointer[actor.PID]
	stopping atomic.Bool

	// Counters, read by Status from any goroutine.
	connected   atomic.Bool
	outboxLen   atomic.Int64
	outboxBytes atomic.Int64
	sent        atomic.Uint64
	acked       atomic.Uint64
	dropped     atomic.Uint64
	received    atomic.Uint64
	reconnects  atomic.Uint64

	// Actor state.
	box         *outbox
	remote      *link
	rdialing    bool
	everUp      bool
	swept       bool // the remote session's QoS 2 receive state is known to be ours
	backoff     time.Duration
	epoch       uint64               // remote session generation
	inflight    map[uint16]*entry    // to the remote, by packet id
	subIDs      map[uint16]bool      // SUBSCRIBE ids awaiting SUBACK at the remote
	window      int                  // min(max_inflight, remote Receive Maximum)
	remoteMax   int                  // remote Maximum Packet Size; 0 = none
	maxQoS      byte                 // remote Maximum QoS
	retainOK    bool                 // remote Retain Available
	aliasMax    uint16               // remote Topic Alias Maximum
	aliases     map[string]uint16    // topic → alias on the current link
	remoteIn    map[uint16]*relState // QoS 1/2 from the remote, by its packet id
	keepAlive   time.Duration        // effective keepalive of the remote link
	lastSend    time.Time            // last packet handed to the remote link
	nextID      uint16               // last packet id used toward the remote
	local       *link                // to the local broker
	ldialing    bool
	localResume bool              // the local session exists: resume it
	localWindow int               // local broker's Receive Maximum
	localOut    map[uint16]*inMsg // publishes to the local broker in flight
	localRel    map[uint16]bool   // QoS 2 from the local broker: PUBREC sent
	pendingIn   []*inMsg          // waiting for the local window
	nextLocalID uint16            // last packet id used toward the local broker
	seq         uint64            // arrival order of messages from the remote
	pumpArmed   bool              // a pump retry is scheduled
	lastStatus  time.Time         // when the last status line was logged
	lastDropLog time.Time         // when the last drop line was logged
	dropsLogged uint64            // dropped counter at the last drop line
	stopDone    chan struct{}     // closed when the actor has stopped
	tickStop    chan struct{}     // closed with stopDone: ends the ticker goroutine
	tickOnce    sync.Once         // closes tickStop and stopDone once
	lastErr     string            // last link error, for status
	held        *packetIn         // the packet being handled; incoming takes its credit
}

// New checks and compiles a bridge's configuration. It opens nothing.
func New(opt Options) (*Bridge, error) {
	c := opt.Config
	scheme, hostport, err := c.Endpoint()
	if err != nil {
		return nil, fmt.Errorf("bridge %q: %w", c.Name, err)
	}
	b := &Bridge{cfg: c, node: opt.Node, log: opt.Logger, scheme: scheme, hostport: hostport,
		maxPkt: opt.MaxPacketSize, broker: opt.Broker,
		box:      newOutbox(c.OutboxMaxMessages, int64(c.OutboxMaxBytes), c.OutboxDrop == config.BridgeDropNewest),
		inflight: map[uint16]*entry{}, subIDs: map[uint16]bool{}, remoteIn: map[uint16]*relState{},
		localOut: map[uint16]*inMsg{}, localRel: map[uint16]bool{},
		backoff: c.BackoffMin.Std(), stopDone: make(chan struct{}), tickStop: make(chan struct{}),
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.maxPkt <= 0 {
		b.maxPkt = protocol.MaxRemainingLength + 5
	}
	if scheme != config.BridgeSchemeTCP {
		host := hostport
		if h, _, err := net.SplitHostPort(hostport); err == nil {
			host = h
		}
		if b.tls, err = clientTLS(c.TLS, host); err != nil {
			return nil, fmt.Errorf("bridge %q: tls: %w", c.Name, err)
		}
	}
	for _, t := range c.Topics {
		r := rule{cfg: t, out: t.Direction != config.BridgeIn, in: t.Direction != config.BridgeOut,
			localFilter: []byte(t.LocalPrefix + t.Pattern), remoteFilter: []byte(t.RemotePrefix + t.Pattern)}
		b.rules = append(b.rules, r)
	}
	return b, nil
}

// Name returns the bridge's name.
func (b *Bridge) Name() string { return b.cfg.Name }

// Status returns the bridge's counters.
func (b *Bridge) Status() Status {
	return Status{Name: b.cfg.Name, Connected: b.connected.Load(),
		Outbox: int(b.outboxLen.Load()), OutboxBytes: b.outboxBytes.Load(),
		Sent: b.sent.Load(), Acked: b.acked.Load(), Dropped: b.dropped.Load(),
		Received: b.received.Load(), Reconnects: b.reconnects.Load()}
}

func (b *Bridge) attrs(extra ...any) []any {
	return append([]any{"node", b.node, "bridge", b.cfg.Name, "remote", b.scheme + "://" + b.hostport}, extra...)
}

// ---- actor plumbing -------------------------------------------------------

// bridgeActor is the thin actor instance; a restart makes a new one over
// the same Bridge.
type bridgeActor struct{ b *Bridge }

func (a *bridgeActor) Receive(ctx actor.Context) { a.b.receive(ctx) }

// Messages to the bridge actor.
type (
	remoteUp struct {
		nc  net.Conn
		r   *protocol.Reader
		ack *protocol.Connack
		v   protocol.Version
	}
	localUp struct {
		nc  net.Conn
		r   *protocol.Reader
		ack *protocol.Connack
	}
	dialFailed struct {
		local bool
		err   error
	}
	linkDown struct {
		l   *link
		err error
	}
	packetIn struct {
		l  *link
		pk protocol.Packet
		n  int64
	}
	tick       struct{}
	retryDial  struct{ local bool }
	pumpAgain  struct{}
	stopBridge struct{ done chan struct{} }
	panicNow   struct{}
)

// InjectPanic makes the bridge actor panic on its next message: the test
// seam for the supervisor's restart of a failed bridge.
func (b *Bridge) InjectPanic() { b.send(&panicNow{}) }

func (b *Bridge) send(msg any) {
	if pid := b.pid.Load(); pid != nil {
		b.sys.Root.Send(pid, msg)
	}
}

func (b *Bridge) receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		b.pid.Store(ctx.Self())
		b.started()
	case *actor.Restarting:
		b.dropLinks(errors.New("bridge actor restarting"))
	case *actor.Stopping:
		b.dropLinks(errors.New("bridge stopping"))
	case *actor.Stopped:
		b.connected.Store(false)
		b.tickOnce.Do(func() {
			close(b.tickStop)
			close(b.stopDone)
		})
	case *remoteUp:
		b.remoteUp(m)
	case *localUp:
		b.localUp(m)
	case *dialFailed:
		b.dialFailed(m)
	case *linkDown:
		b.linkDown(m.l, m.err)
	case *packetIn:
		b.held = nil
		switch m.l {
		case b.remote:
			b.held = m
			if err := b.fromRemote(m.pk); err != nil {
				b.closeLink(m.l, err)
			}
		case b.local:
			if err := b.fromLocal(m.pk); err != nil {
				b.closeLink(m.l, err)
			}
		}
		if b.held != nil || m.l != b.remote {
			m.l.credit.release(m.n)
		}
		b.held = nil
	case *retryDial:
		if m.local {
			b.dialLocal()
		} else {
			b.dialRemoteAsync()
		}
	case *pumpAgain:
		b.pumpArmed = false
		b.pump()
	case *tick:
		b.onTick()
	case *panicNow:
		panic("bridge: injected panic")
	case *stopBridge:
		b.stopping.Store(true)
		b.disconnect()
		ctx.Poison(ctx.Self())
	}
}

func (b *Bridge) started() {
	b.log.Info("bridge starting", b.attrs("client_id", b.cfg.ClientID, "proto_ver", b.cfg.ProtoVer,
		"topics", len(b.rules))...)
	b.dialLocal()
	b.dialRemoteAsync()
}

// ---- the local link -------------------------------------------------------

func (b *Bridge) localClientID() string { return actors.ReservedClientIDPrefix + b.cfg.Name }

func (b *Bridge) dialLocal() {
	if b.local != nil || b.ldialing || b.stopping.Load() {
		return
	}
	b.ldialing = true
	clean := !b.localResume
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ConnectTimeout.Std())
		defer cancel()
		nc, err := b.pl.dial(ctx)
		if err != nil {
			b.send(&dialFailed{local: true, err: err})
			return
		}
		r := protocol.NewReader(nc, readerSize)
		r.SetMaxPacketSize(b.maxPkt)
		cp := &protocol.Connect{Level: protocol.Version5, CleanStart: clean, ClientID: []byte(b.localClientID())}
		cp.Props.SessionExpiry = localSessionExpiry
		cp.Props.Set(protocol.PropSessionExpiry)
		cp.Props.ReceiveMaximum = 65535
		cp.Props.Set(protocol.PropReceiveMaximum)
		cp.Props.MaximumPacketSize = uint32(b.maxPkt)
		cp.Props.Set(protocol.PropMaximumPacketSize)
		deadline, _ := ctx.Deadline()
		ack, err := handshake(nc, r, cp, deadline)
		if err != nil {
			nc.Close()
			b.send(&dialFailed{local: true, err: err})
			return
		}
		b.send(&localUp{nc: nc, r: r, ack: ack})
	}()
}

func (b *Bridge) localUp(m *localUp) {
	b.ldialing = false
	if b.stopping.Load() || b.local != nil {
		m.nc.Close()
		return
	}
	l := b.newLink(m.nc, protocol.Version5)
	b.local = l
	b.localWindow = maxWindow
	if m.ack.Props.Has(protocol.PropReceiveMaximum) {
		b.localWindow = min(maxWindow, int(m.ack.Props.ReceiveMaximum))
	}
	go b.readLoop(l, m.r, 0)
	resumed := b.localResume && m.ack.SessionPresent
	b.localResume = true
	if !resumed {
		// A new local session: nothing of the old one is pending there.
		clear(b.localRel)
		b.subscribeLocal(l)
	}
	// Resend what the local broker has not acknowledged, in order: the
	// session is the same one, so it deduplicates QoS 2 [MQTT-4.4.0-1].
	var redo []*inMsg
	for _, in := range b.localOut {
		redo = append(redo, in)
	}
	sortBySeq(redo)
	for _, in := range redo {
		if !resumed {
			delete(b.localOut, in.localID)
			in.acked = false
			b.pendingIn = append([]*inMsg{in}, b.pendingIn...)
			continue
		}
		if in.acked {
			b.writeAck(l, protocol.TypePubrel, in.localID, 0)
		} else {
			b.writeLocalPublish(in, true)
		}
	}
	if !resumed {
		sortBySeq(b.pendingIn)
	}
	b.pumpIn()
}

func (b *Bridge) subscribeLocal(l *link) {
	for i, r := range b.rules {
		if !r.out {
			continue
		}
		s := &protocol.Subscribe{PacketID: b.localID(), Filters: []protocol.Subscription{{
			Filter: r.localFilter, QoS: byte(r.cfg.QoS), NoLocal: true, RetainAsPublished: true}}}
		s.Props.SubscriptionIDs = []int{i + 1}
		b.write(l, s)
	}
}

// localID returns a packet identifier for the local link that is not in
// use.
func (b *Bridge) localID() uint16 {
	for {
		b.nextLocalID++
		if b.nextLocalID == 0 {
			continue
		}
		if _, busy := b.localOut[b.nextLocalID]; !busy {
			return b.nextLocalID
		}
	}
}

// fromLocal handles a packet from the local broker.
func (b *Bridge) fromLocal(pk protocol.Packet) error {
	switch p := pk.(type) {
	case *protocol.Publish:
		return b.outgoing(p)
	case *protocol.Ack:
		switch p.Kind {
		case protocol.TypePubrel:
			delete(b.localRel, p.PacketID)
			b.writeAck(b.local, protocol.TypePubcomp, p.PacketID, 0)
		case protocol.TypePuback, protocol.TypePubrec:
			in := b.localOut[p.PacketID]
			if in == nil {
				return nil
			}
			if in.acked {
				// A second PUBREC (after a resend): the PUBREL went again.
				b.writeAck(b.local, protocol.TypePubrel, p.PacketID, 0)
				return nil
			}
			if p.Kind == protocol.TypePuback || p.Reason >= 0x80 {
				delete(b.localOut, p.PacketID)
				if p.Reason >= 0x80 {
					b.drop(1, "refused by the local broker: "+p.Reason.Error())
				}
			} else {
				in.acked = true
				b.writeAck(b.local, protocol.TypePubrel, p.PacketID, 0)
			}
			b.deliveredIn(in)
			b.pumpIn()
		case protocol.TypePubcomp:
			delete(b.localOut, p.PacketID)
			b.pumpIn()
		}
	case *protocol.Suback:
		for _, r := range p.Reasons {
			if r >= 0x80 {
				b.log.Error("bridge: local subscription refused", b.attrs("reason", r.Error())...)
			}
		}
	case *protocol.Disconnect:
		return fmt.Errorf("local broker sent DISCONNECT: %s", p.Reason)
	}
	return nil
}

// outgoing takes a message the local broker delivered to the bridge into
// the outbox, then acknowledges it locally.
func (b *Bridge) outgoing(p *protocol.Publish) error {
	if p.QoS == 2 && b.localRel[p.PacketID] {
		// A resend of a message already in the outbox.
		b.writeAck(b.local, protocol.TypePubrec, p.PacketID, 0)
		return nil
	}
	r := b.ruleOut(p)
	if r != nil {
		name := string(p.Topic)
		e := &entry{
			topic:   []byte(r.cfg.RemotePrefix + name[len(r.cfg.LocalPrefix):]),
			payload: p.Payload,
			qos:     min(p.QoS, byte(r.cfg.QoS)),
			retain:  p.Retain && r.cfg.Retain,
			arrived: time.Now(),
			props:   forwardProps(&p.Props),
		}
		e.size = int64(len(e.topic)+len(e.payload)+e.props.Len(protocol.TypePublish)) + 64
		if dropped := b.box.push(e); len(dropped) > 0 {
			b.drop(len(dropped), "outbox full (outbox_drop = "+b.cfg.OutboxDrop+")")
		}
		b.boxChanged()
	}
	switch p.QoS {
	case 1:
		b.writeAck(b.local, protocol.TypePuback, p.PacketID, 0)
	case 2:
		b.localRel[p.PacketID] = true
		b.writeAck(b.local, protocol.TypePubrec, p.PacketID, 0)
	}
	b.pump()
	return nil
}

// ruleOut finds the out rule a local message came through: by the
// subscription identifier the bridge gave each rule, else by matching.
func (b *Bridge) ruleOut(p *protocol.Publish) *rule {
	for _, id := range p.Props.SubscriptionIDs {
		if id >= 1 && id <= len(b.rules) && b.rules[id-1].out {
			return &b.rules[id-1]
		}
	}
	for i := range b.rules {
		r := &b.rules[i]
		if r.out && topic.Match(r.localFilter, p.Topic) && strings.HasPrefix(string(p.Topic), r.cfg.LocalPrefix) {
			return r
		}
	}
	return nil
}

// forwardProps keeps the properties of a message that travel with it over
// a bridge: not its topic alias or subscription identifiers, which belong
// to the hop it came on.
func forwardProps(p *protocol.Properties) protocol.Properties {
	out := *p
	out.SubscriptionIDs = nil
	out.Clear(protocol.PropTopicAlias)
	return out
}

// pumpIn publishes messages from the remote into the local broker while
// the local window allows.
func (b *Bridge) pumpIn() {
	for b.local != nil && len(b.pendingIn) > 0 && len(b.localOut) < b.localWindow {
		in := b.pendingIn[0]
		b.pendingIn[0] = nil
		b.pendingIn = b.pendingIn[1:]
		in.localID = b.localID()
		b.localOut[in.localID] = in
		b.writeLocalPublish(in, false)
	}
	if len(b.pendingIn) == 0 {
		b.pendingIn = nil
	}
}

func (b *Bridge) writeLocalPublish(in *inMsg, dup bool) {
	p := in.pub
	p.PacketID = in.localID
	p.Dup = dup && p.QoS > 0
	b.write(b.local, &p)
}

// deliveredIn is called when the local broker has accepted a message from
// the remote (PUBACK, or PUBREC): now the remote gets its acknowledgement,
// on the current link as long as it is the same remote session.
func (b *Bridge) deliveredIn(in *inMsg) {
	if in.cr != nil {
		in.cr.release(in.n)
		in.cr = nil
	}
	b.received.Add(1)
	if in.epoch != b.epoch {
		return
	}
	st := b.remoteIn[in.remoteID]
	if st == nil {
		return
	}
	if in.pub.QoS == 1 {
		delete(b.remoteIn, in.remoteID)
		if b.remote != nil {
			b.writeAck(b.remote, protocol.TypePuback, in.remoteID, 0)
		}
		return
	}
	st.received = true
	if b.remote != nil {
		b.writeAck(b.remote, protocol.TypePubrec, in.remoteID, 0)
	}
}

// ---- the remote link ------------------------------------------------------

func (b *Bridge) connectPacket(clean bool) *protocol.Connect {
	c := b.cfg
	cp := &protocol.Connect{Level: protocol.Version(c.ProtoVer), CleanStart: clean,
		ClientID: []byte(c.ClientID), KeepAlive: uint16(c.KeepAlive.Std() / time.Second)}
	if cp.Level < protocol.Version5 && c.TryPrivate {
		// Mosquitto's try_private: tells the remote this is a bridge, so it
		// does not send back what the bridge published and keeps RETAIN.
		cp.Bridge = true
	}
	if c.Username != "" {
		cp.UsernameFlag, cp.Username = true, []byte(c.Username)
	}
	if c.Password != "" {
		cp.PasswordFlag, cp.Password = true, []byte(c.Password)
	}
	if cp.Level == protocol.Version5 {
		if s := uint32(c.SessionExpiry.Std() / time.Second); s > 0 {
			cp.Props.SessionExpiry = s
			cp.Props.Set(protocol.PropSessionExpiry)
		}
		cp.Props.ReceiveMaximum = uint16(min(c.MaxInflight, 65535))
		cp.Props.Set(protocol.PropReceiveMaximum)
		cp.Props.MaximumPacketSize = uint32(b.maxPkt)
		cp.Props.Set(protocol.PropMaximumPacketSize)
	}
	return cp
}

func (b *Bridge) dialRemoteAsync() {
	if b.remote != nil || b.rdialing || b.stopping.Load() {
		return
	}
	b.rdialing = true
	cp := b.connectPacket(b.cfg.CleanStart)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.ConnectTimeout.Std())
		defer cancel()
		nc, err := dialRemote(ctx, b.scheme, b.hostport, b.tls)
		if err != nil {
			b.send(&dialFailed{err: err})
			return
		}
		r := protocol.NewReader(nc, readerSize)
		r.SetMaxPacketSize(b.maxPkt)
		deadline, _ := ctx.Deadline()
		ack, err := handshake(nc, r, cp, deadline)
		if err != nil {
			nc.Close()
			b.send(&dialFailed{err: err})
			return
		}
		if b.stopping.Load() {
			nc.Close()
			return
		}
		b.send(&remoteUp{nc: nc, r: r, ack: ack, v: cp.Level})
	}()
}

func (b *Bridge) dialFailed(m *dialFailed) {
	if m.local {
		b.ldialing = false
		if b.stopping.Load() {
			return
		}
		b.log.Error("bridge: cannot connect to the local broker", b.attrs("reason", m.err.Error())...)
		b.after(time.Second, &retryDial{local: true})
		return
	}
	b.rdialing = false
	if b.stopping.Load() {
		return
	}
	wait := b.nextBackoff()
	b.lastErr = m.err.Error()
	b.log.Warn("bridge connect failed", b.attrs("reason", m.err.Error(), "retry_in", wait.Round(time.Millisecond).String())...)
	b.after(wait, &retryDial{})
}

// nextBackoff returns the wait before the next attempt, jittered by ±25%,
// and doubles the base up to backoff_max.
func (b *Bridge) nextBackoff() time.Duration {
	base := b.backoff
	b.backoff = min(b.backoff*2, b.cfg.BackoffMax.Std())
	j := time.Duration(float64(base) * (0.75 + 0.5*rand.Float64()))
	return max(j, time.Millisecond)
}

func (b *Bridge) after(d time.Duration, msg any) {
	time.AfterFunc(d, func() {
		if !b.stopping.Load() {
			b.send(msg)
		}
	})
}

func (b *Bridge) remoteUp(m *remoteUp) {
	b.rdialing = false
	if b.stopping.Load() || b.remote != nil {
		m.nc.Close()
		return
	}
	ack := m.ack
	l := b.newLink(m.nc, m.v)
	b.remote = l
	if b.everUp {
		b.reconnects.Add(1)
	}
	b.everUp = true
	b.connected.Store(true)
	b.backoff = b.cfg.BackoffMin.Std() // a link that came up resets the backoff

	v5 := m.v == protocol.Version5
	b.window = min(b.cfg.MaxInflight, maxWindow)
	b.remoteMax, b.maxQoS, b.retainOK, b.aliasMax = 0, 2, true, 0
	b.keepAlive = b.cfg.KeepAlive.Std()
	if v5 {
		pr := &ack.Props
		if pr.Has(protocol.PropReceiveMaximum) {
			b.window = min(b.window, int(pr.ReceiveMaximum)) // [MQTT-3.3.4-9]
		}
		if pr.Has(protocol.PropMaximumPacketSize) {
			b.remoteMax = int(pr.MaximumPacketSize) // [MQTT-3.1.2-24]
		}
		if pr.Has(protocol.PropMaximumQoS) {
			b.maxQoS = pr.MaximumQoS // [MQTT-3.2.2-11]
		}
		if pr.Has(protocol.PropRetainAvailable) {
			b.retainOK = pr.RetainAvailable == 1 // [MQTT-3.2.2-14]
		}
		if pr.Has(protocol.PropTopicAliasMaximum) {
			b.aliasMax = pr.TopicAliasMaximum // [MQTT-3.2.2-17]
		}
		if pr.Has(protocol.PropServerKeepAlive) {
			b.keepAlive = time.Duration(pr.ServerKeepAlive) * time.Second // [MQTT-3.2.2-21]
		}
	}
	b.aliases = nil
	b.nextID = 0
	clear(b.subIDs)

	present := ack.SessionPresent
	if !present {
		// A new session at the remote: its receive state is gone.
		b.epoch++
		clear(b.remoteIn)
	}
	resend, accepted := b.box.rewind(present)
	if accepted > 0 {
		b.acked.Add(uint64(accepted))
	}
	clear(b.inflight)
	b.log.Info("bridge connected", b.attrs("session_present", present, "resend", len(resend),
		"outbox", b.box.count, "window", b.window)...)
	go b.readLoop(l, m.r, b.keepAlive)

	if present && !b.swept {
		b.sweep(l)
	}
	b.swept = true

	// Resend what the remote has not acknowledged, in order, at once
	// [MQTT-4.4.0-1]: PUBLISH with DUP, or PUBREL after a PUBREC.
	for _, e := range resend {
		b.inflight[e.id] = e
		if e.state == stReleased {
			b.writeAck(l, protocol.TypePubrel, e.id, 0)
		} else {
			b.sendEntry(e, true)
		}
	}
	// Subscribe on every connection, as Mosquitto does: the rules may
	// have changed since the session was made. v5 Retain Handling 1 keeps
	// a reconnect from sending the retained messages again; 3.1.1 cannot
	// ask that.
	b.subscribeRemote(l, v5)
	b.boxChanged()
	b.pump()
}

// sweep releases every packet identifier at the remote. It runs on the
// first connection after this broker started when the remote still has the
// bridge's session: that session may hold QoS 2 receive state from before
// the restart (a PUBREC sent, the PUBREL never received), and the remote
// would take a new QoS 2 message with such an identifier for a resend and
// not deliver it. A PUBREL for every identifier completes those exchanges
// (a PUBREL for an unknown one is answered with PUBCOMP, in v5 with 0x92);
// the PUBRELs go before any PUBLISH, and the PUBCOMPs that come back match
// nothing in flight, so they are ignored. About 256 KiB, once.
func (b *Bridge) sweep(l *link) {
	buf := make([]byte, 0, 4*65535)
	for id := 1; id <= 65535; id++ {
		buf, _ = (&protocol.Ack{Kind: protocol.TypePubrel, PacketID: uint16(id)}).Append(buf, l.v)
	}
	b.enqueue(l, buf)
	b.log.Info("bridge: released the remote session's QoS 2 identifiers left from before this start", b.attrs()...)
}

func (b *Bridge) subscribeRemote(l *link, v5 bool) {
	var subs []protocol.Subscription
	for _, r := range b.rules {
		if !r.in {
			continue
		}
		// No Local keeps what the bridge publishes from coming back to it
		// [MQTT-3.8.3-3]; Retain Handling 1 sends the retained messages
		// only when the subscription is new, so a reconnect does not
		// duplicate them.
		sub := protocol.Subscription{Filter: r.remoteFilter, QoS: byte(r.cfg.QoS), NoLocal: v5, RetainAsPublished: v5}
		if v5 {
			sub.RetainHandling = 1
		}
		subs = append(subs, sub)
	}
	if len(subs) == 0 {
		return
	}
	id := b.remoteID()
	b.subIDs[id] = true
	b.write(l, &protocol.Subscribe{PacketID: id, Filters: subs})
}

// remoteID returns a packet identifier not in use toward the remote.
func (b *Bridge) remoteID() uint16 {
	for {
		b.nextID++
		if b.nextID == 0 {
			continue
		}
		if _, busy := b.inflight[b.nextID]; busy {
			continue
		}
		if b.subIDs[b.nextID] {
			continue
		}
		return b.nextID
	}
}

// pump sends queued outbox entries in order while the window and the
// link's writer allow.
func (b *Bridge) pump() {
	l := b.remote
	for l != nil {
		if l.out.Pending() > linkPending/2 {
			if !b.pumpArmed {
				b.pumpArmed = true
				b.after(pumpRetry, &pumpAgain{})
			}
			break
		}
		e := b.box.peek()
		if e == nil {
			break
		}
		if min(e.qos, b.maxQoS) > 0 && len(b.inflight) >= b.window {
			break
		}
		if b.expired(e) {
			b.box.ack(e)
			b.drop(1, "message expired in the outbox")
			continue
		}
		if min(e.qos, b.maxQoS) > 0 {
			e.id = b.remoteID()
			e.state = stSent
			b.inflight[e.id] = e
		}
		if !b.sendEntry(e, e.sentAny) {
			if e.id != 0 {
				delete(b.inflight, e.id)
			}
			b.box.ack(e)
			continue
		}
		e.sentAny = true
		if e.state != stSent {
			b.box.ack(e) // QoS 0 leaves the outbox when handed to the link
			b.acked.Add(1)
		}
	}
	b.boxChanged()
}

func (b *Bridge) expired(e *entry) bool {
	if !e.props.Has(protocol.PropMessageExpiry) {
		return false
	}
	return time.Since(e.arrived) >= time.Duration(e.props.MessageExpiry)*time.Second
}

// sendEntry writes e's PUBLISH to the remote. It returns false when e
// cannot be sent at all (too large for the remote): e is then dropped and
// counted.
func (b *Bridge) sendEntry(e *entry, dup bool) bool {
	l := b.remote
	qos := min(e.qos, b.maxQoS)
	p := protocol.Publish{Topic: e.topic, Payload: e.payload, QoS: qos, Retain: e.retain && b.retainOK,
		Dup: dup && qos > 0, PacketID: e.id}
	if l.v == protocol.Version5 {
		p.Props = e.props
		if p.Props.Has(protocol.PropMessageExpiry) {
			// Forward the time left [MQTT-3.3.2-6].
			left := time.Duration(p.Props.MessageExpiry)*time.Second - time.Since(e.arrived)
			p.Props.MessageExpiry = uint32(max(left/time.Second, 1))
		}
		if b.aliasMax > 0 {
			if a, ok := b.aliases[string(e.topic)]; ok {
				p.Topic = nil
				p.Props.TopicAlias = a
				p.Props.Set(protocol.PropTopicAlias)
			} else if len(b.aliases) < int(b.aliasMax) {
				if b.aliases == nil {
					b.aliases = map[string]uint16{}
				}
				a := uint16(len(b.aliases) + 1) // [MQTT-3.3.2-9] at most Topic Alias Maximum
				b.aliases[string(e.topic)] = a
				p.Props.TopicAlias = a
				p.Props.Set(protocol.PropTopicAlias)
			}
		}
	}
	buf, err := p.Append(nil, l.v)
	if err == nil && b.remoteMax > 0 && len(buf) > b.remoteMax {
		// [MQTT-3.1.2-24]: never send the remote more than it accepts.
		err = fmt.Errorf("%d bytes, over the remote's Maximum Packet Size %d", len(buf), b.remoteMax)
	}
	if err != nil {
		b.drop(1, "cannot send: "+err.Error())
		return false
	}
	b.enqueue(l, buf)
	b.sent.Add(1)
	return true
}

// fromRemote handles a packet from the remote broker.
func (b *Bridge) fromRemote(pk protocol.Packet) error {
	switch p := pk.(type) {
	case *protocol.Publish:
		return b.incoming(p)
	case *protocol.Ack:
		e := b.inflight[p.PacketID]
		switch p.Kind {
		case protocol.TypePuback:
			if e == nil || e.state != stSent {
				return nil // not ours, or already done: ignore
			}
			b.completed(e, p.Reason)
		case protocol.TypePubrec:
			if e == nil {
				return nil
			}
			if p.Reason >= 0x80 {
				b.completed(e, p.Reason) // [MQTT-4.3.3-?] the exchange ends here
				return nil
			}
			e.state = stReleased
			b.writeAck(b.remote, protocol.TypePubrel, p.PacketID, 0)
		case protocol.TypePubcomp:
			if e == nil || e.state != stReleased {
				return nil
			}
			b.completed(e, protocol.ReasonSuccess)
		case protocol.TypePubrel:
			reason := protocol.ReasonSuccess
			if _, ok := b.remoteIn[p.PacketID]; ok {
				delete(b.remoteIn, p.PacketID)
			} else if b.remote.v == protocol.Version5 {
				reason = protocol.ReasonPacketIdentifierNotFound
			}
			b.writeAck(b.remote, protocol.TypePubcomp, p.PacketID, reason)
		}
	case *protocol.Suback:
		delete(b.subIDs, p.PacketID)
		for i, r := range p.Reasons {
			if r >= 0x80 {
				b.log.Error("bridge: remote refused a subscription", b.attrs("filter", b.inFilter(i), "reason", r.Error())...)
			}
		}
	case *protocol.Pingresp:
	case *protocol.Disconnect:
		return fmt.Errorf("remote sent DISCONNECT: %s", p.Reason)
	case *protocol.Connack, *protocol.Connect, *protocol.Subscribe, *protocol.Unsubscribe, *protocol.Pingreq:
		return fmt.Errorf("unexpected %T from the remote: %w", pk, protocol.ReasonProtocolError)
	}
	return nil
}

func (b *Bridge) inFilter(i int) string {
	for _, r := range b.rules {
		if r.in {
			if i == 0 {
				return string(r.remoteFilter)
			}
			i--
		}
	}
	return ""
}

// completed finishes an entry the remote acknowledged (or refused).
func (b *Bridge) completed(e *entry, reason protocol.ReasonCode) {
	delete(b.inflight, e.id)
	if reason >= 0x80 {
		b.drop(1, "refused by the remote: "+reason.Error())
	} else {
		b.acked.Add(1)
	}
	b.box.ack(e)
	b.pump()
}

// incoming takes a message from the remote toward the local broker.
func (b *Bridge) incoming(p *protocol.Publish) error {
	if p.Props.Has(protocol.PropTopicAlias) {
		// The bridge announces no Topic Alias Maximum [MQTT-3.3.2-10].
		return fmt.Errorf("topic alias from the remote: %w", protocol.ReasonTopicAliasInvalid)
	}
	if p.QoS > 0 {
		if st, ok := b.remoteIn[p.PacketID]; ok {
			// A resend of a message the bridge has already taken in: never
			// delivered twice [MQTT-4.3.3-?]. Acknowledge it again once the
			// local broker has it.
			if st.received && p.QoS == 2 {
				b.writeAck(b.remote, protocol.TypePubrec, p.PacketID, 0)
			}
			return nil
		}
	}
	r := b.ruleIn(p.Topic)
	if r == nil {
		// Not ours (an overlapping subscription of the session): acknowledge
		// and drop.
		switch p.QoS {
		case 1:
			b.writeAck(b.remote, protocol.TypePuback, p.PacketID, 0)
		case 2:
			b.remoteIn[p.PacketID] = &relState{received: true}
			b.writeAck(b.remote, protocol.TypePubrec, p.PacketID, 0)
		}
		return nil
	}
	name := string(p.Topic)
	in := &inMsg{epoch: b.epoch, remoteID: p.PacketID}
	in.pub = protocol.Publish{
		Topic:   []byte(r.cfg.LocalPrefix + name[len(r.cfg.RemotePrefix):]),
		Payload: p.Payload,
		QoS:     p.QoS,
		Retain:  p.Retain && r.cfg.Retain,
		Props:   forwardProps(&p.Props),
	}
	b.seq++
	in.seq = b.seq
	if p.QoS == 0 {
		if b.local == nil || b.local.out.Pending() > linkPending/2 {
			b.drop(1, "QoS 0 from the remote while the local link is busy")
			return nil
		}
		b.writeLocalPublish(in, false)
		b.received.Add(1)
		return nil
	}
	b.remoteIn[p.PacketID] = &relState{}
	if h := b.held; h != nil {
		// The message keeps its reader credit until the local broker has
		// it: a remote that outruns the local side is slowed by TCP.
		in.cr, in.n = h.l.credit, h.n
		b.held = nil
	}
	b.pendingIn = append(b.pendingIn, in)
	b.pumpIn()
	return nil
}

func (b *Bridge) ruleIn(name []byte) *rule {
	for i := range b.rules {
		r := &b.rules[i]
		if r.in && topic.Match(r.remoteFilter, name) && strings.HasPrefix(string(name), r.cfg.RemotePrefix) {
			return r
		}
	}
	return nil
}

// ---- links ----------------------------------------------------------------

func (b *Bridge) newLink(nc net.Conn, v protocol.Version) *link {
	return &link{nc: nc, v: v, up: time.Now(), credit: newCredit(readerCredit),
		out: transport.NewOutbound(nc, transport.Options{MaxPending: linkPending})}
}

// readLoop is a link's reader goroutine: it decodes packets and hands them
// to the actor, waiting for credit. A silent peer is dead after 1.5 ×
// keepalive [MQTT-3.1.2-22].
func (b *Bridge) readLoop(l *link, r *protocol.Reader, keepAlive time.Duration) {
	for {
		if keepAlive > 0 {
			l.nc.SetReadDeadline(time.Now().Add(keepAlive * 3 / 2))
		}
		h, body, err := r.Next()
		if err != nil {
			if keepAlive > 0 && errors.Is(err, os.ErrDeadlineExceeded) && l.out.Err() == nil {
				err = fmt.Errorf("no packet from the remote for 1.5 × keepalive (%s)", keepAlive)
			}
			b.send(&linkDown{l: l, err: err})
			return
		}
		n := int64(len(body)) + 64
		if !l.credit.acquire(n) {
			return
		}
		pk, err := protocol.Decode(h, append([]byte(nil), body...), l.v)
		if err != nil {
			l.credit.release(n)
			b.send(&linkDown{l: l, err: err})
			return
		}
		b.send(&packetIn{l: l, pk: pk, n: n})
	}
}

func (b *Bridge) write(l *link, p protocol.Packet) {
	if l == nil {
		return
	}
	buf, err := p.Append(nil, l.v)
	if err != nil {
		b.closeLink(l, err)
		return
	}
	b.enqueue(l, buf)
}

func (b *Bridge) writeAck(l *link, kind protocol.Type, id uint16, reason protocol.ReasonCode) {
	b.write(l, &protocol.Ack{Kind: kind, PacketID: id, Reason: reason})
}

func (b *Bridge) enqueue(l *link, buf []byte) {
	if l == nil {
		return
	}
	if err := l.out.Enqueue(buf); err != nil {
		if errors.Is(err, transport.ErrQueueFull) {
			b.closeLink(l, fmt.Errorf("writer full: %w", err))
		}
		return
	}
	if l == b.remote {
		b.lastSend = time.Now()
	}
}

// closeLink closes l; its reader then reports linkDown.
func (b *Bridge) closeLink(l *link, err error) {
	if l == nil {
		return
	}
	var code protocol.ReasonCode
	if errors.As(err, &code) && l.v == protocol.Version5 {
		d := &protocol.Disconnect{Reason: code}
		if buf, aerr := d.Append(nil, l.v); aerr == nil {
			l.out.CloseAfter(transport.ReasonProtocol, err, buf)
			b.linkDown(l, err)
			return
		}
	}
	l.out.CloseWith(transport.ReasonClosed, err)
	b.linkDown(l, err)
}

// linkDown forgets a link that closed and schedules its reconnection.
func (b *Bridge) linkDown(l *link, err error) {
	l.out.Close()
	l.credit.close()
	switch l {
	case b.remote:
		b.remote = nil
		b.connected.Store(false)
		up := time.Since(l.up)
		reason := "closed"
		if err != nil {
			reason = err.Error()
		}
		if oe := l.out.Err(); oe != nil && err == nil {
			reason = oe.Error()
		}
		b.lastErr = reason
		if b.stopping.Load() {
			return
		}
		wait := b.nextBackoff()
		b.log.Warn("bridge disconnected", b.attrs("reason", reason, "up", up.Round(time.Millisecond).String(),
			"outbox", b.box.count, "retry_in", wait.Round(time.Millisecond).String())...)
		b.after(wait, &retryDial{})
	case b.local:
		b.local = nil
		if b.stopping.Load() {
			return
		}
		b.log.Warn("bridge: local link closed", b.attrs("reason", fmt.Sprint(err))...)
		b.after(100*time.Millisecond, &retryDial{local: true})
	}
}

func (b *Bridge) dropLinks(err error) {
	if b.remote != nil {
		b.closeLink(b.remote, err)
	}
	if b.local != nil {
		b.closeLink(b.local, err)
	}
}

// disconnect ends both links with a DISCONNECT (normal disconnection).
func (b *Bridge) disconnect() {
	for _, l := range []*link{b.remote, b.local} {
		if l == nil {
			continue
		}
		d := &protocol.Disconnect{}
		if buf, err := d.Append(nil, l.v); err == nil {
			l.out.CloseAfter(transport.ReasonShutdown, nil, buf)
		} else {
			l.out.Close()
		}
		l.credit.close()
	}
	b.remote, b.local = nil, nil
	b.connected.Store(false)
}

func (b *Bridge) onTick() {
	now := time.Now()
	if l := b.remote; l != nil && b.keepAlive > 0 && now.Sub(b.lastSend) >= b.keepAlive/2 {
		b.write(l, &protocol.Pingreq{})
	}
	if b.remote != nil {
		b.pump() // expiries, and anything a full writer held back
	}
	if now.Sub(b.lastStatus) >= statusEvery {
		b.lastStatus = now
		s := b.Status()
		b.log.Info("bridge status", b.attrs("connected", s.Connected, "outbox", s.Outbox, "outbox_bytes", s.OutboxBytes,
			"sent", s.Sent, "acked", s.Acked, "dropped", s.Dropped, "received", s.Received, "reconnects", s.Reconnects,
			"last_error", b.lastErr)...)
	}
	b.logDrops(now, "")
}

// drop counts n dropped messages and logs them (see logDrops).
func (b *Bridge) drop(n int, why string) {
	b.dropped.Add(uint64(n))
	b.logDrops(time.Now(), why)
}

// logDrops logs the drops not logged yet, at most one line per
// dropLogEvery; the ticker calls it too, so a burst's count comes out once
// the rate limit allows.
func (b *Bridge) logDrops(now time.Time, why string) {
	total := b.dropped.Load()
	if total == b.dropsLogged || now.Sub(b.lastDropLog) < dropLogEvery {
		return
	}
	b.lastDropLog = now
	attrs := []any{"dropped", total - b.dropsLogged, "dropped_total", total, "outbox", b.box.count}
	if why != "" {
		attrs = append([]any{"reason", why}, attrs...)
	}
	b.log.Warn("bridge dropped messages", b.attrs(attrs...)...)
	b.dropsLogged = total
}

func (b *Bridge) boxChanged() {
	n, by := b.box.len()
	b.outboxLen.Store(int64(n))
	b.outboxBytes.Store(by)
}

func sortBySeq(s []*inMsg) {
	slices.SortFunc(s, func(a, b *inMsg) int { return cmp.Compare(a.seq, b.seq) })
}
