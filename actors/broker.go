package actors

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/nanoactor/nanoactor/protocol/topic"
	"github.com/nanoactor/nanoactor/transport"
)

// Broker is one nanoactor node: the actor system, the subscription index,
// and the top actors (registry of sessions, pipes, topics).
type Broker struct {
	opt   Options
	sys   *actor.ActorSystem
	log   *slog.Logger
	index *topic.Index[string, subEntry]

	top      *actor.PID // parent of registry and topics
	registry *actor.PID
	topics   *actor.PID
	pipes    *actor.PID

	// Every connection actor is spawned from pipeProps and every session
	// from sessionProps: one Props each, not one per actor.
	pipeProps    *actor.Props
	sessionProps *actor.Props
	restarts     handoff // see handoff

	pipeSeq      atomic.Uint64
	backlogDrops atomic.Uint64 // messages dropped at the router for a full session backlog
	cursors      sync.Map      // shared group round-robin cursors
	stats        Stats

	// pipeConns: the connection actors' conns by PID id, for supervision log
	// lines, the fault seams and the progress watchdog (see conn.desc).
	pipeMu    sync.RWMutex
	pipeConns map[string]*conn

	stopSys chan struct{} // closed by Shutdown: stops $SYS and the watchdog
	mu      sync.Mutex
	servers []*transport.Server
	closing bool

	faultsOn atomic.Bool // EnableFaults was called: every new pipe gets a FaultPlan
}

// Stats are the broker's counters.
type Stats struct {
	conns    atomic.Int64
	sessions atomic.Int64
	routed   atomic.Uint64
	dropped  atomic.Uint64
	expired  atomic.Uint64
	tooLarge atomic.Uint64
}

// Snapshot of the counters.
type StatsSnapshot struct {
	Connections, Sessions              int64
	Routed, Dropped, Expired, TooLarge uint64
}

// Stats returns the counters.
func (b *Broker) Stats() StatsSnapshot {
	return StatsSnapshot{Connections: b.stats.conns.Load(), Sessions: b.stats.sessions.Load(),
		Routed: b.stats.routed.Load(), Dropped: b.stats.dropped.Load(), Expired: b.stats.expired.Load(),
		TooLarge: b.stats.tooLarge.Load()}
}

// New builds a broker and starts its actors; it serves nothing until Serve.
func New(opt Options) *Broker {
	opt.fill()
	b := &Broker{opt: opt, log: opt.Logger, index: topic.New[string, subEntry]()}
	lf := func(*actor.ActorSystem) *slog.Logger {
		return slog.New(quietHandler{h: b.log.Handler(), min: slog.LevelWarn}).With("lib", "protoactor")
	}
	b.sys = actor.NewActorSystem(actor.WithLoggerFactory(lf))
	shrinkPIDRegistry(b.sys)
	b.pipeProps = actor.PropsFromProducer(func() actor.Actor { return &pipeActor{b: b} },
		actor.WithDispatcher(connDispatcher), actor.WithMailbox(compactMailbox))
	b.sessionProps = actor.PropsFromProducer(newSession(b), actor.WithDispatcher(sessionDispatcher), actor.WithMailbox(compactMailbox))
	pipeStrategy := opt.PipeStrategy
	if pipeStrategy == nil {
		pipeStrategy = actor.NewOneForOneStrategy(0, time.Second, func(any) actor.Directive { return actor.StopDirective })
	}
	sessStrategy := opt.SessionStrategy
	if sessStrategy == nil {
		sessStrategy = actor.NewOneForOneStrategy(10, 10*time.Second, func(any) actor.Directive { return actor.ResumeDirective })
	}
	topStrategy := opt.TopicStrategy
	if topStrategy == nil {
		topStrategy = actor.NewOneForOneStrategy(10, 10*time.Second, func(any) actor.Directive { return actor.ResumeDirective })
	}
	// The top actor supervises the registry, the topic actor and the pipes
	// parent with the topics policy (resume: their state is kept); the
	// registry supervises sessions, the pipes parent connections.
	ready := make(chan struct{})
	top := func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actor.Started); ok {
			b.pipes, _ = ctx.SpawnNamed(actor.PropsFromFunc(pipesReceive, actor.WithSupervisor(pipeStrategy)), "pipes")
			b.registry, _ = ctx.SpawnNamed(actor.PropsFromProducer(newRegistry(b), actor.WithSupervisor(sessStrategy)), "sessions")
			b.topics, _ = ctx.SpawnNamed(actor.PropsFromProducer(newTopics(b)), "topics")
			close(ready)
		}
	}
	b.top, _ = b.sys.Root.SpawnNamed(actor.PropsFromFunc(top, actor.WithSupervisor(topStrategy)), "broker")
	<-ready
	b.stopSys = make(chan struct{})
	if opt.SysInterval > 0 {
		// The first $SYS figures are retained before New returns, so a
		// client that subscribes to $SYS/# finds them at once, whenever
		// the ticker goroutine first runs.
		start := time.Now()
		b.publishSys(start)
		go b.runSys(start, opt.SysInterval, b.stopSys)
	}
	if opt.ProgressTimeout > 0 {
		go b.runWatchdog(opt.ProgressTimeout, b.stopSys)
	}
	return b
}

// spawnPipe asks the pipes actor to start the connection actor of c.
type spawnPipe struct {
	c     *conn
	reply chan<- *actor.PID // buffered
}

// broadcast sends msg to every connection actor.
type broadcast struct{ msg any }

func pipesReceive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *spawnPipe:
		pid := ctx.Spawn(m.c.b.pipeProps)
		ctx.Send(pid, m.c) // its first message: see pipeActor
		m.reply <- pid
	case *broadcast:
		for _, c := range ctx.Children() {
			ctx.Send(c, m.msg)
		}
	}
}

// ActorSystem returns the broker's actor system (supervisor wiring, tests).
func (b *Broker) ActorSystem() *actor.ActorSystem { return b.sys }

// ServeOptions are a listener's settings.
type ServeOptions struct {
	MaxConns int // 0: no limit
	// IdentityMode, when set (transport.IdentityCN, IdentityDN,
	// IdentitySAN), replaces the CONNECT username with the verified client
	// certificate's identity.
	IdentityMode string
	// HandshakeTimeout bounds a TLS / QUIC handshake; 0 means the
	// listener's own deadline.
	HandshakeTimeout time.Duration
	// Internal marks an in-process listener (a bridge's link to its own
	// broker): only its clients may use the reserved client identifiers
	// that begin with ReservedClientIDPrefix.
	Internal bool
}

// ReservedClientIDPrefix begins the client identifiers of the broker's own
// in-process clients (bridges). A client on a network listener asking for
// one is refused (0x85), so nobody can take over a bridge's session.
const ReservedClientIDPrefix = "$bridge/"

// Serve accepts connections from l until l closes or Shutdown; it returns
// at once, serving in the background. Every transport feeds the same
// connection code: a transport only yields a byte stream.
func (b *Broker) Serve(name string, l transport.Listener, so ServeOptions) {
	s := &transport.Server{MaxConns: so.MaxConns, Logger: b.log}
	lis := &listenerInfo{name: name, so: so}
	s.Handle = func(nc net.Conn) *transport.Park { return b.serveConn(s, nc, lis) }
	b.mu.Lock()
	b.servers = append(b.servers, s)
	b.mu.Unlock()
	go s.Serve(l)
}

func (b *Broker) faults() *transport.FaultPlan {
	if !b.faultsOn.Load() {
		return nil
	}
	return new(transport.FaultPlan)
}

// EnableFaults turns on the fault-injection seam for tests: every pipe
// accepted from now on gets a FaultPlan (see Fault). Off by default; it
// costs a nil check per batch when off.
func (b *Broker) EnableFaults() { b.faultsOn.Store(true) }

// Fault returns the FaultPlan of the current pipe of clientID, or nil when
// the client has no pipe or faults are off. Setting its mode makes that
// pipe's send path fail (error, panic, invalid buffer, stall).
func (b *Broker) Fault(clientID string) *transport.FaultPlan {
	var plan *transport.FaultPlan
	var newest uint64
	b.pipeMu.RLock()
	defer b.pipeMu.RUnlock()
	for _, c := range b.pipeConns {
		if c.pipeClient() == clientID && c.faults != nil && c.desc.Load()&descClosing == 0 && c.id > newest {
			plan, newest = c.faults, c.id
		}
	}
	return plan
}

// PanicPipe makes the connection actor of clientID's current pipe panic
// inside Receive (test seam; needs EnableFaults). It reports whether the
// pipe was found.
func (b *Broker) PanicPipe(clientID string) bool {
	if !b.faultsOn.Load() {
		return false
	}
	var pid *actor.PID
	var newest uint64
	b.pipeMu.RLock()
	for _, c := range b.pipeConns {
		if c.pipeClient() == clientID && c.desc.Load()&descClosing == 0 && c.id > newest {
			pid, newest = c.self, c.id
		}
	}
	b.pipeMu.RUnlock()
	if pid != nil {
		b.sys.Root.Send(pid, injectedPanic{})
	}
	return pid != nil
}

// injectedPanic makes a connection actor panic (PanicPipe).
type injectedPanic struct{}

// Shutdown stops accepting, closes every connection (v5 DISCONNECT 0x8B),
// publishes pending wills and stops the actors, within ctx's deadline.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.mu.Lock()
	if b.closing {
		b.mu.Unlock()
		return nil
	}
	b.closing = true
	servers := b.servers
	b.mu.Unlock()
	close(b.stopSys)
	for _, s := range servers {
		s.Close()
	}
	b.sys.Root.Send(b.pipes, &broadcast{msg: &shutdownConn{}})
	for b.stats.conns.Load() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	// Every connection handler finishes now that every connection is
	// closing; Wait also stops the pollers of parked connections.
	waited := make(chan struct{})
	go func() {
		for _, s := range servers {
			s.Wait()
		}
		close(waited)
	}()
	select {
	case <-waited:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.sys.Root.StopFuture(b.pipes).Wait()
	b.sys.Root.StopFuture(b.registry).Wait()
	b.sys.Root.StopFuture(b.top).Wait()
	b.sys.Shutdown()
	return nil
}
