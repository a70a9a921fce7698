package actors

import (
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/nanoactor/nanoactor/protocol"
)

// TestPipeRestartKeepsConnection: under a Restart policy a connection actor
// that panics is restarted with the same connection (the shared Props'
// producer cannot know it: the restarted instance takes it over), and the
// client carries on.
func TestPipeRestartKeepsConnection(t *testing.T) {
	opt := TestOptions()
	opt.PipeStrategy = actor.NewOneForOneStrategy(10, time.Minute, func(any) actor.Directive { return actor.RestartDirective })
	b, addr := testBroker(t, opt)
	b.EnableFaults()
	c := dial(t, addr, protocol.Version5)
	if ca := c.connect("restarted", true); ca.Reason != 0 {
		t.Fatalf("connack %v", ca.Reason)
	}
	if !b.PanicPipe("restarted") {
		t.Fatal("pipe not found")
	}
	time.Sleep(50 * time.Millisecond)
	c.send(&protocol.Pingreq{})
	if p, ok := c.recv().(*protocol.Pingresp); !ok {
		t.Fatalf("got %T, want PINGRESP", p)
	}
	c.send(&protocol.Subscribe{PacketID: 1, Filters: []protocol.Subscription{{Filter: []byte("r/#"), QoS: 1}}})
	if _, ok := c.recv().(*protocol.Suback); !ok {
		t.Fatal("no SUBACK after the restart")
	}
}

// TestPipeStopsBeforeAttached: a connection actor stopped (here by a panic
// under the default Stop policy) around the time its session attaches
// still detaches, whichever came first: its will goes out and its
// clean session ends.
func TestPipeStopsBeforeAttached(t *testing.T) {
	b, addr := testBroker(t, TestOptions())
	b.EnableFaults()
	sub := dial(t, addr, protocol.Version5)
	sub.connect("watcher", true)
	sub.send(&protocol.Subscribe{PacketID: 1, Filters: []protocol.Subscription{{Filter: []byte("will/#")}}})
	sub.recv()
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("doomed-%d", i)
		c := dial(t, addr, protocol.Version5)
		c.send(&protocol.Connect{Level: protocol.Version5, ClientID: []byte(id), CleanStart: true, KeepAlive: 30,
			WillFlag: true, Will: protocol.Will{Topic: []byte("will/" + id), Payload: []byte("x")}})
		deadline := time.Now().Add(5 * time.Second)
		for !b.PanicPipe(id) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no pipe", id)
			}
			time.Sleep(10 * time.Microsecond)
		}
		p, ok := sub.recv().(*protocol.Publish)
		if !ok || string(p.Topic) != "will/"+id {
			t.Fatalf("%s: got %+v, want its will", id, p)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.Stats().Sessions != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("sessions = %d, want 1 (the watcher)", b.Stats().Sessions)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// restartCtx is the part of an actor.Context that a session's Started and
// Restarting use.
type restartCtx struct {
	actor.Context
	msg  any
	self *actor.PID
}

func (c restartCtx) Message() any     { return c.msg }
func (c restartCtx) Self() *actor.PID { return c.self }

// TestSessionRestartKeepsMailbox: a restarted session instance takes over
// the client id and the mailbox pointer it names to connections (see
// conn.toSession); protoactor tells only the first instance, at spawn.
func TestSessionRestartKeepsMailbox(t *testing.T) {
	b, _ := testBroker(t, TestOptions())
	mb := new(mailbox)
	pid := actor.NewPID("local", "sessions/$restart-test")
	old := newSession(b)().(*session)
	old.setMailbox(mb)
	old.clientID = "c1"
	old.Receive(restartCtx{msg: &actor.Restarting{}, self: pid})
	next := newSession(b)().(*session)
	next.Receive(restartCtx{msg: &actor.Started{}, self: pid})
	if next.mb != mb || next.clientID != "c1" {
		t.Fatalf("restarted session: mailbox %p client %q, want %p %q", next.mb, next.clientID, mb, "c1")
	}
}
