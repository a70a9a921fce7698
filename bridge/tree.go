package bridge

import (
	"context"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/nanoactor/nanoactor/actors"
)

// Tree is the "bridges" branch of the broker's actor tree: one parent
// actor whose supervisor strategy decides what happens to a failed bridge
// actor (restart: the outbox and the QoS 2 state live outside the actor
// instance and are kept), and one child per bridge.
type Tree struct {
	sys     *actor.ActorSystem
	parent  *actor.PID
	bridges []*Bridge
}

type spawnBridge struct {
	props *actor.Props
	name  string
	reply chan *actor.PID
}

// NewTree spawns the bridges parent in sys under strategy.
func NewTree(sys *actor.ActorSystem, strategy actor.SupervisorStrategy) *Tree {
	t := &Tree{sys: sys}
	recv := func(ctx actor.Context) {
		if m, ok := ctx.Message().(*spawnBridge); ok {
			pid, err := ctx.SpawnNamed(m.props, m.name)
			if err != nil {
				pid = nil
			}
			m.reply <- pid
		}
	}
	t.parent, _ = sys.Root.SpawnNamed(actor.PropsFromFunc(recv, actor.WithSupervisor(strategy)), "bridges")
	return t
}

// Start connects b to its local broker through an in-process pipe and
// starts its actor, which dials the remote.
func (t *Tree) Start(b *Bridge) {
	b.sys = t.sys
	b.pl = newPipeListener(b.cfg.Name)
	b.broker.Serve("bridge:"+b.cfg.Name, b.pl, actors.ServeOptions{Internal: true})
	props := actor.PropsFromProducer(func() actor.Actor { return &bridgeActor{b: b} })
	reply := make(chan *actor.PID, 1)
	t.sys.Root.Send(t.parent, &spawnBridge{props: props, name: b.cfg.Name, reply: reply})
	<-reply
	t.bridges = append(t.bridges, b)
	go func() {
		tk := time.NewTicker(tickEvery)
		defer tk.Stop()
		for {
			select {
			case <-tk.C:
				b.send(&tick{})
			case <-b.tickStop:
				return
			}
		}
	}()
}

// Bridges returns the bridges started, in order.
func (t *Tree) Bridges() []*Bridge { return t.bridges }

// Stop ends every bridge: each sends DISCONNECT to its remote and to its
// local broker, and its actor stops. It waits for them or for ctx.
func (t *Tree) Stop(ctx context.Context) error {
	for _, b := range t.bridges {
		b.send(&stopBridge{})
	}
	var err error
	for _, b := range t.bridges {
		select {
		case <-b.stopDone:
		case <-ctx.Done():
			err = ctx.Err()
		}
		b.stopping.Store(true)
		b.pl.Close()
	}
	t.sys.Root.Stop(t.parent)
	return err
}
