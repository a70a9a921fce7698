package actors

import (
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
