package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/transport"
)

// Messages from a connection's reader goroutine to its actor.
type (
	// readFailed ends the connection: a read error, EOF, a keepalive or
	// CONNECT timeout, or a packet that failed to decode.
	readFailed struct {
		err     error
		level   protocol.Version // for a CONNECT that failed: the version to answer in (Connect.AckVersion)
		connect bool             // the failure is the CONNECT itself
	}
)

// conn is the actor of one network connection (pipe). It owns the reader
// goroutine and the Outbound (the single writer) of its socket and runs the
// MQTT state machine of that socket: CONNECT, keepalive, packet order,
// topic aliases, limits. A fault here stops this actor and closes this
// socket only; the session survives.
type conn struct {
	b       *Broker
	nc      net.Conn
	lis     *listenerInfo // the listener's name and options
	id      uint64
	remote  string
	out     *transport.Outbound
	credit  *credit // &credits
	credits credit  // reader credit (readerCredit)
	self    *actor.PID

	clientID      string
	session       *actor.PID
	smb           *mailbox             // the session's mailbox: see toSession
	hnd           *connHandle          // what the session is told of this connection (CONNECT accepted)
	early         []*inbound           // received between CONNECT and attached
	earlyFail     *readFailed          // the reader's failure between CONNECT and attached, after early
	faults        *transport.FaultPlan // test seam; nil in production
	username      string               // as authenticated (CONNECT's, or the certificate identity)
	aliases       map[uint16][]byte
	pendingExpiry *time.Duration // a close before the session answered: what to tell it (with detachPending)

	// Small fields together, so that the struct packs (256 bytes: one
	// per connection).
	quota         atomic.Int32  // see connHandle.quota
	desc          atomic.Uint32 // descClient, descClosing, descWatched: see describe
	version       protocol.Version
	connecting    bool // CONNECT received, CONNACK not yet
	connected     bool // CONNACK queued
	closed        bool
	detachSent    bool
	detachPending bool // a close before the session answered: what to tell it
	pendingWill   bool
	expiry0       bool // CONNECT had Session Expiry 0 (v5 3.14.2.2.2)
	logClient     bool // log lines carry "client": the CONNECT passed its checks
}

// listenerInfo is what a connection knows of its listener, one per Serve.
type listenerInfo struct {
	name string
	so   ServeOptions
}

// log is the connection's logger: its attributes are added per line.
func (c *conn) log() connLog { return connLog{c} }

// serveConn runs one accepted socket: it builds the connection, spawns its
// actor under the pipes supervisor, then becomes the connection's reader
// goroutine. It returns nil when the reader has stopped and the writer has
// finished (so a final DISCONNECT or CONNACK is flushed before the
// transport closes the socket), or a Park when the connection has gone
// idle (see connReader). Owner: the listener's server goroutine.
func (b *Broker) serveConn(srv *transport.Server, nc net.Conn, lis *listenerInfo) *transport.Park {
	listener, so := lis.name, &lis.so
	// The TLS or QUIC handshake runs here, on the connection's own
	// goroutine under a deadline, never on the accept loop: a client that
	// stalls or sends garbage costs one log line and one socket.
	if err := transport.Handshake(nc, so.HandshakeTimeout); err != nil {
		b.log.Info("handshake failed", "listener", listener, "remote", nc.RemoteAddr().String(), "reason", err.Error())
		return nil
	}
	c := &conn{b: b, nc: nc, lis: lis, id: b.pipeSeq.Add(1), remote: nc.RemoteAddr().String(), faults: b.faults()}
	rd := &connReader{c: c, srv: srv, sys: b.sys, limit: b.opt.ConnectTimeout}
	c.out = transport.NewOutbound(nc, transport.Options{
		MaxPending:   b.opt.MaxOutboundBytes,
		WriteTimeout: b.opt.WriteTimeout,
		Faults:       c.faults,
		OnClose:      rd.wake,
	})
	c.credits.init(readerCredit(b.opt.MaxPacketSize))
	c.credit, rd.rctx = &c.credits, context.Background() // c.cancel ends the reader's waits
	b.stats.conns.Add(1)
	if rd.self = b.spawnActor(c, 10*time.Second); rd.self == nil {
		c.out.CloseWith(transport.ReasonProtocol, errors.New("pipe not spawned"))
		b.stats.conns.Add(-1)
		c.cancel()
		return nil
	}
	return rd.run()
}

// pipeActor is the actor of one connection. All of them are spawned from
// one Props (Broker.pipeProps), so the conn comes as the first message,
// which the pipes actor sends right after the spawn; a restarted instance
// takes the conn from the one it replaces (see handoff), and carries on
// with it as before.
type pipeActor struct {
	b *Broker
	c *conn
}

// Receive implements actor.Actor.
func (a *pipeActor) Receive(ctx actor.Context) {
	if a.c != nil {
		if _, ok := ctx.Message().(*actor.Restarting); ok {
			a.b.restarts.put(ctx.Self().Id, a.c)
			return
		}
		a.c.Receive(ctx)
		return
	}
	switch m := ctx.Message().(type) {
	case *conn:
		a.c = m
		m.start(ctx)
	case *actor.Started:
		if c, ok := a.b.restarts.take(ctx.Self().Id).(*conn); ok {
			a.c = c
			c.start(ctx)
		}
	}
}

// Receive handles the messages of the connection's actor (pipeActor).
func (c *conn) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *inbound:
		c.packet(ctx, m)
	case *readFailed:
		if !m.connect && c.connecting && c.session == nil {
			// The session may have sent the CONNACK already: the failure
			// is answered as on a connected client (a v5 DISCONNECT with
			// the reason), in order after what was read before it, once
			// the session has answered (attached).
			c.earlyFail = m
			return
		}
		c.readFailed(ctx, m)
	case *attached:
		c.attached(ctx, m)
	case *kick:
		if c.sendPathFailed(ctx) {
			// The writer failed first; the client, seeing its socket
			// close, may have reconnected and taken its session over
			// before our reader reported the failure.
			return
		}
		c.fail(ctx, m.reason, errors.New(m.why), m.reason != protocol.ReasonSessionTakenOver)
	case watchdogTick:
		c.watchdog(ctx)
	case injectedPanic:
		panic("injected fault: connection actor panic")
	case *shutdownConn:
		c.fail(ctx, protocol.ReasonServerShuttingDown, errors.New("server shutting down"), true)
	case *actor.Stopping:
		c.teardown(ctx)
	}
}

// errConnectTimeout: a connection sent no CONNECT in time.
var errConnectTimeout = errors.New("connect timeout")

// shutdownConn asks a connection to close for a broker shutdown.
type shutdownConn struct{}

func (c *conn) start(ctx actor.Context) {
	if c.self == nil { // a restarted actor keeps its PID: others may be reading c.self
		c.self = ctx.Self()
		c.b.addPipe(c)
	}
}

// cancel makes the reader's wait for credit, and every later one, fail:
// the actor is gone.
func (c *conn) cancel() { c.credits.cancel() }

// readerCredit bounds the bytes one connection may have decoded but not
// yet processed by its actors: twice the maximum packet, at least 1 MiB.
func readerCredit(maxPacket int) int64 {
	n := int64(2 * maxPacket)
	if n < 1<<20 {
		n = 1 << 20
	}
	return n
}

// parkAfter is how long a connection's reader waits with nothing buffered
// before it parks: a plain TCP connection that is quiet this long gives
// back its read buffer and its goroutine (transport.Server.Park) until the
// client sends again.
const parkAfter = time.Second

// parkAfterConnect replaces parkAfter for the wait that follows the
// CONNECT: a client waits for its CONNACK before it sends more, so the
// reader parks at once (the millisecond catches what was sent along with
// the CONNECT), instead of holding a goroutine and a read buffer for a
// second per new connection. In a connection storm that is thousands of
// goroutines.
const parkAfterConnect = time.Millisecond

// connReader is the read side of a connection: the state of its read loop,
// which lives on across parks. Its goroutine is the Server's handler
// goroutine of the connection; while parked it has none. It decodes
// packets, copying each body out of the read buffer, and waits for reader
// credit before handing one to the actor, so a client that publishes
// faster than the broker routes is slowed by TCP, not buffered without
// bound. It exits when the socket closes (the actor's teardown closes it)
// or on the first error, which it reports.
//
// Deadlines: before each read it sets one, limit after the wait for bytes
// began: the CONNECT timeout, then 1.5 times the keepalive
// [MQTT-3.1.2-24]; zero means none. Once connected, with nothing buffered
// and the connection open, the deadline is at most parkAfter away; when
// that one passes the reader parks, to be woken at the keepalive deadline
// (Park.WakeAt), and the Outbound's OnClose wakes it on a close.
type connReader struct {
	c    *conn
	srv  *transport.Server
	sys  *actor.ActorSystem
	self *actor.PID
	rctx context.Context
	r    *protocol.Reader

	version  protocol.Version
	ka       time.Duration // the keepalive in force, for the error text
	limit    time.Duration // the read deadline after waitFrom; zero: none
	waitFrom time.Time     // when the current wait for bytes began; zero between reads
	parkable bool          // connected, and the socket can park (transport.Parkable)
	resumed  bool          // back from a park and no bytes read since: no park deadline
	fresh    bool          // the CONNECT (or a keepalive PINGREQ that woke a park) was read, nothing since: parkAfterConnect
	woke     bool          // resumed from a park, no packet decoded since

	park atomic.Pointer[transport.Park] // the current park, for wake
}

// Read implements io.Reader for the protocol.Reader: one read of the socket
// under the deadline. It returns protocol.ErrIdle when the park deadline
// passed with nothing read.
func (rd *connReader) Read(p []byte) (int, error) {
	now := time.Now()
	if rd.waitFrom.IsZero() {
		rd.waitFrom = now
	}
	var dl time.Time
	if rd.limit > 0 {
		dl = rd.waitFrom.Add(rd.limit)
	}
	idle := false
	if rd.parkable && !rd.resumed && rd.r.Buffered() == 0 && rd.c.out.Err() == nil {
		after := parkAfter
		if rd.fresh {
			after = parkAfterConnect
		}
		if t := rd.waitFrom.Add(after); dl.IsZero() || t.Before(dl) {
			dl, idle = t, true
		}
	}
	rd.c.nc.SetReadDeadline(dl)
	n, err := rd.c.nc.Read(p)
	if n > 0 {
		rd.waitFrom, rd.resumed, rd.fresh = time.Time{}, false, false
	}
	if idle && n == 0 && errors.Is(err, os.ErrDeadlineExceeded) && rd.c.out.Err() == nil {
		return 0, protocol.ErrIdle
	}
	return n, err
}

// wake resumes a parked reader (the Outbound's OnClose).
func (rd *connReader) wake() {
	if p := rd.park.Load(); p != nil {
		p.Wake()
	}
}

func (rd *connReader) fail(err error, f *readFailed) {
	if f == nil {
		f = &readFailed{}
	}
	f.err = err
	rd.sys.Root.Send(rd.self, f)
}

// finish ends the reader: the handler returns once the writer has finished.
func (rd *connReader) finish() *transport.Park {
	rd.c.cancel()
	<-rd.c.out.Done()
	return nil
}

// run is the reader's loop, from the start or from a park. It returns nil
// when the connection is finished, or the Park to hold it idle.
func (rd *connReader) run() *transport.Park {
	c := rd.c
	if rd.r == nil {
		rd.r = protocol.NewReader(rd, protocol.DefaultReaderSize)
		rd.r.SetMaxPacketSize(c.b.opt.ConnectPacketMax)
		if !rd.readConnect() {
			return rd.finish()
		}
	}
	for {
		h, body, err := rd.r.Next()
		if err != nil {
			if errors.Is(err, protocol.ErrIdle) {
				if p := rd.tryPark(); p != nil {
					return p
				}
				continue
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && c.out.Err() == nil {
				err = fmt.Errorf("keepalive timeout (%v): %w", rd.ka, protocol.ReasonKeepAliveTimeout)
			}
			rd.fail(err, nil)
			return rd.finish()
		}
		cost := int64(len(body)) + 64
		if err := c.credit.Acquire(rd.rctx, cost); err != nil {
			return rd.finish() // the actor is gone
		}
		pkt, err := decodeInbound(h, clone(body), rd.version)
		if err != nil {
			c.credit.Release(cost)
			rd.fail(err, nil)
			return rd.finish()
		}
		if rd.woke {
			// A parked connection woken by a PINGREQ alone is keepalive
			// traffic: it parks again as soon as after a CONNECT, not a
			// second later, so that a round of keepalives across many idle
			// connections does not hold a goroutine and a read buffer
			// each for parkAfter.
			rd.woke = false
			if _, ping := pkt.(*protocol.Pingreq); ping {
				rd.fresh = true
			}
		}
		rd.sys.Root.Send(rd.self, &inbound{gen: c.id, pkt: pkt, credit: c.credit, cost: cost})
	}
}

// readConnect reads and hands over the CONNECT; false ends the reader.
func (rd *connReader) readConnect() bool {
	c := rd.c
	h, body, err := rd.r.Next()
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) && c.out.Err() == nil {
			err = fmt.Errorf("no CONNECT within connect_timeout (%v): %w", c.b.opt.ConnectTimeout, errConnectTimeout)
		}
		rd.fail(fmt.Errorf("read connect: %w", err), nil)
		return false
	}
	if h.Type != protocol.TypeConnect {
		// [MQTT-3.1.0-1] the first packet must be CONNECT.
		rd.fail(fmt.Errorf("first packet is %s, not CONNECT: %w", h.Type, protocol.ReasonProtocolError), nil)
		return false
	}
	cp := newConnect() // connect gives it back
	if err := cp.Decode(h, clone(body), 0); err != nil {
		level := cp.AckVersion()
		if cp.Level > protocol.Version5 {
			// A newer protocol than ours: answer in the newest form we know,
			// v5 CONNACK 0x84 [MQTT-3.1.2-2].
			level = protocol.Version5
		}
		rd.fail(err, &readFailed{level: level, connect: true})
		return false
	}
	rd.version = cp.Level
	rd.ka = time.Duration(c.effectiveKeepalive(cp)) * time.Second
	rd.sys.Root.Send(rd.self, &inbound{gen: c.id, pkt: cp})
	rd.limit = rd.ka + rd.ka/2 // [MQTT-3.1.2-24] one and a half times the keepalive; 0 disables
	rd.r.SetMaxPacketSize(c.b.opt.MaxPacketSize)
	// Only sockets the poller can watch get a park deadline: on others it
	// would be a wasted wake-up, and on WebSocket a deadline that passes
	// during a Read closes the connection.
	rd.parkable = transport.Parkable(c.nc)
	rd.fresh = true
	return true
}

// tryPark parks the idle connection: the read buffer goes back to its
// pool, the keepalive deadline goes to the poller, and the Park is returned for
// the handler to return. It returns nil when the connection cannot park
// (not a kernel socket) or is closing: the reader then reads on, without a
// park deadline.
func (rd *connReader) tryPark() *transport.Park {
	rd.resumed = true // until bytes arrive, no second park deadline
	rd.fresh = false
	if !rd.r.Release() {
		return nil
	}
	p, err := rd.srv.Park(rd.c.nc, rd.resume)
	if err != nil {
		rd.parkable = false
		return nil
	}
	rd.park.Store(p)
	if rd.c.out.Err() != nil {
		// Closed meanwhile: OnClose may have missed the park. Read on.
		return nil
	}
	if rd.limit > 0 {
		p.WakeAt(rd.waitFrom.Add(rd.limit)) // the poller keeps the keepalive deadline
	}
	return p
}

// resume continues the read loop of a parked connection, on a new
// goroutine of the Server: bytes arrived, the keepalive deadline passed,
// or the connection is closing.
func (rd *connReader) resume() *transport.Park {
	rd.park.Store(nil)
	rd.woke = true
	return rd.run()
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// effectiveKeepalive is the keepalive the broker enforces: the client's,
// lowered to keepalive_max for v5 (sent back as Server Keep Alive).
func (c *conn) effectiveKeepalive(cp *protocol.Connect) uint16 {
	ka := cp.KeepAlive
	if cp.Level < protocol.Version5 {
		return ka // 3.1.1 has no way to tell the client another value
	}
	if c.b.opt.KeepaliveDefault > 0 {
		ka = c.b.opt.KeepaliveDefault
	}
	if (ka == 0 || ka > c.b.opt.KeepaliveMax) && c.b.opt.KeepaliveMax < 65535 {
		ka = c.b.opt.KeepaliveMax
	}
	return ka
}

func (c *conn) readFailed(ctx actor.Context, m *readFailed) {
	if c.closed {
		return
	}
	if m.connect {
		c.connectFailed(ctx, m.level, m.err)
		return
	}
	if c.sendPathFailed(ctx) {
		return
	}
	if oe := c.out.Err(); oe != nil {
		// The socket was closed for another recorded reason first: that
		// is the reason, not the read error it caused.
		c.close(ctx, oe.Reason.String(), oe, true)
		return
	}
	var rc protocol.ReasonCode
	switch {
	case errors.Is(m.err, io.EOF), errors.Is(m.err, net.ErrClosed), errors.Is(m.err, io.ErrUnexpectedEOF):
		c.close(ctx, "connection closed by client", nil, true)
		return
	case errors.As(m.err, &rc):
	case errors.Is(m.err, errConnectTimeout):
		c.close(ctx, "connect timeout", m.err, false)
		return
	default:
		c.supervised(transport.ReasonReadError.String(), m.err)
		c.close(ctx, "read error", m.err, true)
		return
	}
	c.fail(ctx, rc, m.err, true)
}

// sendPathFailed closes the connection, with one supervision line, when
// its writer has failed (write timeout, write error, an invalid buffer, a
// panic, a stall): that is the reason the pipe ends, whatever message made
// the actor look (the read error the closed socket caused, or a takeover
// by the client's next connection).
func (c *conn) sendPathFailed(ctx actor.Context) bool {
	if c.closed {
		return false
	}
	oe := c.out.Err()
	if oe == nil {
		return false
	}
	switch oe.Reason {
	case transport.ReasonWriteError, transport.ReasonWriteTimeout, transport.ReasonPanic,
		transport.ReasonInvalidBuffer, transport.ReasonStalled:
		c.supervised(oe.Reason.String(), oe)
		c.close(ctx, oe.Reason.String(), oe, true)
		return true
	}
	return false
}

// fail closes the connection for a protocol reason: v5 gets DISCONNECT with
// the reason code first [MQTT-4.13.1-1], 3.1.1 just the close
// [MQTT-4.8.0-1]. One log line.
func (c *conn) fail(ctx actor.Context, rc protocol.ReasonCode, err error, sendWill bool) {
	if c.closed {
		return
	}
	if c.connected && c.version >= protocol.Version5 && rc.IsError() || rc == protocol.ReasonSessionTakenOver && c.version >= protocol.Version5 {
		d := &protocol.Disconnect{Reason: rc}
		if buf, e := d.Append(nil, c.version); e == nil {
			c.closed = true
			c.out.CloseAfter(transport.ReasonProtocol, err, buf)
			c.finish(ctx, rc.String(), err, sendWill)
			return
		}
	}
	c.close(ctx, rc.String(), err, sendWill)
}

// close closes the socket now and ends the actor.
func (c *conn) close(ctx actor.Context, why string, err error, sendWill bool) {
	if c.closed {
		return
	}
	c.closed = true
	c.out.CloseWith(transport.ReasonProtocol, err)
	c.finish(ctx, why, err, sendWill)
}

func (c *conn) finish(ctx actor.Context, why string, err error, sendWill bool) {
	c.describe()
	attrs := []any{"reason", why}
	if err != nil {
		attrs = append(attrs, "error", err.Error())
	}
	if why == "connection closed by client" || why == protocol.ReasonSuccess.String() {
		c.log().Debug("connection closed", attrs...)
	} else {
		c.log().Info("connection closed", attrs...)
	}
	c.detach(ctx, sendWill, nil)
	c.stop(ctx)
}

// stop stops the actor, unless the session has not answered the CONNECT
// yet: then the actor waits for attached, so that the session learns of
// the close from it (attached stops it).
func (c *conn) stop(ctx actor.Context) {
	if c.connecting && c.session == nil {
		return
	}
	ctx.Stop(c.self)
}

// detach tells the session the connection is gone, once. Before the
// session is known, the facts are kept for attached.
func (c *conn) detach(ctx actor.Context, sendWill bool, expiry *time.Duration) {
	if c.detachSent {
		return
	}
	if c.session == nil {
		if !c.detachPending {
			c.detachPending, c.pendingWill, c.pendingExpiry = true, sendWill, expiry
		}
		return
	}
	c.detachSent = true
	ctx.Send(c.session, &detached{gen: c.id, sendWill: sendWill, expiry: expiry})
}

// teardown runs when the actor stops for any reason, a panic included:
// the socket closes, the reader goroutine ends, the session is told.
func (c *conn) teardown(ctx actor.Context) {
	if c.out != nil && !c.closed {
		// Stopped without closing first (a panic, a supervisor stop): close
		// now. A close already under way (CloseAfter flushing a final
		// CONNACK or DISCONNECT) is left to finish; its write deadline
		// bounds it.
		// The stream still works: a v5 client learns why (0x83
		// Implementation specific error) before the close.
		stopped := errors.New("connection actor stopped")
		buf, err := (&protocol.Disconnect{Reason: protocol.ReasonImplementationSpecific}).Append(nil, c.version)
		if c.connected && c.version >= protocol.Version5 && err == nil {
			c.out.CloseAfter(transport.ReasonPanic, stopped, buf)
		} else {
			c.out.CloseWith(transport.ReasonProtocol, stopped)
		}
	}
	c.cancel()
	c.closed = true
	c.detach(ctx, true, nil)
	if c.connecting && !c.hnd.link.CompareAndSwap(linkNone, linkGone) {
		// The session attached this connection, but its attached is lost
		// with this actor: tell it the way it learns of a connection actor
		// that stopped without detaching.
		ctx.Send(c.hnd.session, &connGone{gen: c.id})
	}
	if c.self != nil && c.b.removePipe(c) {
		c.b.stats.conns.Add(-1)
	}
}

// conn.desc bits: what other goroutines may read of a conn found in
// Broker.pipeConns (supervision lines, the fault seams, the watchdog). The
// fields they read are set before the conn is added, except clientID:
// descClient says it is final.
const (
	descClient  uint32 = 1 << iota // clientID is set for good
	descClosing                    // the pipe is closing: no target for the fault seam
	descWatched                    // connected: the progress watchdog looks at its writer
)

// describe publishes the pipe's client id, and that it is closing once it
// is, for supervision log lines. The actor calls it when the CONNECT was
// accepted and when the connection closes; clientID is not written after
// either.
func (c *conn) describe() {
	f := descClient
	if c.closed {
		f |= descClosing
	}
	c.desc.Or(f)
}

// addPipe makes c's actor known by its PID id (once c.self is set).
func (b *Broker) addPipe(c *conn) {
	b.pipeMu.Lock()
	if b.pipeConns == nil {
		b.pipeConns = map[string]*conn{}
	}
	b.pipeConns[c.self.Id] = c
	b.pipeMu.Unlock()
}

// removePipe forgets c's actor; it reports whether it was known.
func (b *Broker) removePipe(c *conn) bool {
	b.pipeMu.Lock()
	defer b.pipeMu.Unlock()
	if b.pipeConns[c.self.Id] != c {
		return false
	}
	delete(b.pipeConns, c.self.Id)
	return true
}

// pipeClient is the client id of a known pipe, as far as published.
func (c *conn) pipeClient() string {
	if c.desc.Load()&descClient != 0 {
		return c.clientID
	}
	return ""
}

// DescribePipe returns slog attributes (listener, client, remote, pipe)
// for a connection actor's PID, or nil. Safe from any goroutine.
func (b *Broker) DescribePipe(pid any) []any {
	p, ok := pid.(*actor.PID)
	if !ok || p == nil {
		return nil
	}
	b.pipeMu.RLock()
	c := b.pipeConns[p.Id]
	b.pipeMu.RUnlock()
	if c == nil {
		return nil
	}
	return []any{"listener", c.lis.name, "client", c.pipeClient(), "remote", c.remote, "pipe", c.id}
}

// watchdogTick asks the connection actor to check its writer's progress.
type watchdogTick struct{}

// startWatchdog puts the connection under the progress watchdog: a writer
// with bytes pending and no progress for progress_timeout is closed (it
// might be wedged somewhere its write deadline cannot reach), with a
// supervision line. One goroutine watches every connection (runWatchdog).
func (c *conn) startWatchdog() {
	if c.b.opt.ProgressTimeout > 0 {
		c.desc.Or(descWatched)
	}
}

// watchdogEvery is how often the watchdog looks at the writers.
func watchdogEvery(limit time.Duration) time.Duration {
	return max(limit/4, 50*time.Millisecond)
}

// runWatchdog is the progress watchdog of every connection: each
// watchdogEvery it looks at the writers of the watched connections and
// sends watchdogTick to the actor of each stalled one, which checks again
// and closes it. It returns when stop closes.
func (b *Broker) runWatchdog(limit time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(watchdogEvery(limit))
	defer t.Stop()
	var stalled []*actor.PID
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			b.pipeMu.RLock()
			for _, c := range b.pipeConns {
				if c.desc.Load()&(descWatched|descClosing) == descWatched && c.out.Stalled(now, limit) {
					stalled = append(stalled, c.self)
				}
			}
			b.pipeMu.RUnlock()
			for i, pid := range stalled {
				b.sys.Root.Send(pid, watchdogTick{})
				stalled[i] = nil
			}
			stalled = stalled[:0]
		}
	}
}

func (c *conn) watchdog(ctx actor.Context) {
	if c.closed || c.desc.Load()&descWatched == 0 {
		return
	}
	limit := c.b.opt.ProgressTimeout
	if c.out.Stalled(time.Now(), limit) {
		err := fmt.Errorf("%d bytes pending, no write progress for %v", c.out.Pending(), limit)
		c.supervised(transport.ReasonStalled.String(), err)
		c.closed = true
		c.out.CloseWith(transport.ReasonStalled, err)
		c.finish(ctx, transport.ReasonStalled.String(), err, true)
	}
}

// supervised writes the structured supervision line for a pipe whose send
// path failed: the pipe is stopped and its socket closed, its session kept.
// Same keys as the supervisor's strategy lines.
func (c *conn) supervised(reason string, err error) {
	c.b.log.Warn("supervision", "node", c.b.opt.Node, "tree", "pipes", "child", c.selfID(),
		"reason", reason, "error", err.Error(), "directive", "stop", "restarts_in_window", 0,
		"listener", c.lis.name, "client", c.clientID, "remote", c.remote, "pipe", c.id)
}

func (c *conn) selfID() string {
	if c.self == nil {
		return ""
	}
	return c.self.Id
}

// connDispatcher runs a connection actor's mailbox on the goroutine that
// sends to it, when the mailbox is idle: mostly the connection's own
// reader, so a packet is handled by the goroutine that read it, without
// waking another (one goroutine hand-off fewer per packet). A message sent
// while the mailbox is being processed is queued and taken by the
// goroutine already processing it, as with any mailbox. The actor never
// blocks, so running it on a sender's goroutine delays that sender by the
// actor's handling time only.
var connDispatcher = actor.NewSynchronizedDispatcher(300)
