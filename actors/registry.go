package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/nanoactor/nanoactor/protocol"
)

// connectReq asks the registry for the session of a client id.
type connectReq struct {
	clientID string
	attach   *attach
}

// registry owns the client id → session map and is the parent (and so the
// supervisor) of every session actor.
type registry struct {
	b        *Broker
	sessions map[string]*actor.PID
}

func newRegistry(b *Broker) actor.Producer {
	return func() actor.Actor { return &registry{b: b, sessions: map[string]*actor.PID{}} }
}

// Receive implements actor.Actor.
func (r *registry) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *connectReq:
		pid := r.sessions[m.clientID]
		if pid != nil && m.attach.cleanStart {
			// Clean start replaces the session: the old one kicks its
			// connection (0x8E) and ends [MQTT-3.1.2-4] [MQTT-3.1.4-3].
			ctx.Send(pid, &endSession{reason: protocol.ReasonSessionTakenOver})
			pid = nil
		}
		if pid == nil {
			pid = ctx.Spawn(r.b.sessionProps)
			r.sessions[m.clientID] = pid
			r.b.stats.sessions.Add(1)
		}
		ctx.Send(pid, m.attach)
	case *sessionEnded:
		if cur := r.sessions[m.clientID]; cur != nil && cur.Equal(m.pid) {
			delete(r.sessions, m.clientID)
		}
		// No attach goes to it from now on; the ones sent before are ahead
		// of the pill in its mailbox and come back here.
		ctx.Poison(m.pid)
		r.b.stats.sessions.Add(-1)
	case *countSessions:
		ctx.Respond(len(r.sessions))
	}
}

// countSessions asks the registry how many sessions exist (tests, $SYS).
type countSessions struct{}
