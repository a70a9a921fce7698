package actors

import (
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/nanoactor/nanoactor/protocol"
)

// Pools of what every new connection needs once and then drops: a CONNECT
// (~900 bytes with its two property sets), the CONNACK the session encodes
// (~350), and what serveConn waits for its actor with. During a connection
// storm they are most of the garbage a connection makes, and the heap grows
// with the garbage between two collections.

var connectPool = sync.Pool{New: func() any { return new(protocol.Connect) }}

// newConnect returns a zeroed CONNECT to decode into.
func newConnect() *protocol.Connect { return connectPool.Get().(*protocol.Connect) }

// freeConnect takes back a CONNECT nobody refers to any more (its slices
// may live on: they are the packet's body, not the struct).
func freeConnect(cp *protocol.Connect) {
	*cp = protocol.Connect{}
	connectPool.Put(cp)
}

var connackPool = sync.Pool{New: func() any { return new(protocol.Connack) }}

func newConnack() *protocol.Connack { return connackPool.Get().(*protocol.Connack) }

// freeConnack takes back a CONNACK once encoded.
func freeConnack(ca *protocol.Connack) {
	*ca = protocol.Connack{}
	connackPool.Put(ca)
}

// spawnWait is serveConn's request to the pipes actor and its wait for the
// answer, reused from connection to connection: the request (with the
// reply channel the pipes actor answers on last), and the timer bounding
// the wait.
type spawnWait struct {
	req   spawnPipe
	reply chan *actor.PID // capacity 1
	timer *time.Timer
}

var spawnWaits sync.Pool

// spawnActor asks the pipes actor to spawn c's actor and waits for its PID
// at most limit; nil on timeout.
func (b *Broker) spawnActor(c *conn, limit time.Duration) *actor.PID {
	w, _ := spawnWaits.Get().(*spawnWait)
	if w == nil {
		w = &spawnWait{reply: make(chan *actor.PID, 1), timer: time.NewTimer(limit)}
	} else {
		w.timer.Reset(limit)
	}
	w.req = spawnPipe{c: c, reply: w.reply}
	b.sys.Root.Send(b.pipes, &w.req)
	select {
	case pid := <-w.reply:
		// The pipes actor is done with w.req: the answer is its last use.
		w.timer.Stop()
		w.req = spawnPipe{}
		spawnWaits.Put(w)
		return pid
	case <-w.timer.C:
		return nil // w is dropped: the answer may still come
	}
}
