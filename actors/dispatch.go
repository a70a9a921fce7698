package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// workerDispatcher runs mailboxes on a pool of worker goroutines instead of
// a new goroutine per schedule (protoactor's default). A session's handling
// of a PUBLISH goes deep enough (actor frames, routing, encoding, the
// socket write) that a fresh goroutine's 2 KiB stack is grown and copied
// twice on nearly every schedule; under a light, steady load that copying
// was a seventh of the broker's CPU. A worker keeps its grown stack: it
// takes the next schedule from the channel, and exits after workerIdle
// without one, so an idle broker holds no workers.
//
// Every schedule still runs on a goroutine of its own (one mailbox per
// worker at a time), so no mailbox waits for another: the pool only changes
// which goroutine that is.
type workerDispatcher struct {
	throughput int
	work       chan func() // unbuffered: a send succeeds only into an idle worker
}

// workerIdle is how long a worker waits for another schedule before it
// exits.
const workerIdle = 2 * time.Second

func newWorkerDispatcher(throughput int) *workerDispatcher {
	return &workerDispatcher{throughput: throughput, work: make(chan func())}
}

// Schedule implements actor.Dispatcher: an idle worker takes fn, or a new
// one starts with it. It never blocks.
func (d *workerDispatcher) Schedule(fn func()) {
	select {
	case d.work <- fn:
	default:
		go d.worker(fn)
	}
}

// Throughput implements actor.Dispatcher.
func (d *workerDispatcher) Throughput() int { return d.throughput }

// worker runs fn, then the schedules handed to it, until it has waited
// workerIdle for one. Owner: the dispatcher; a panic escaping a mailbox
// (protoactor's mailbox recovers its actor's) is not caught here, as with
// go fn().
func (d *workerDispatcher) worker(fn func()) {
	fn()
	t := time.NewTimer(workerIdle)
	defer t.Stop()
	for {
		select {
		case fn = <-d.work:
			fn()
			t.Reset(workerIdle)
		case <-t.C:
			return
		}
	}
}

var _ actor.Dispatcher = (*workerDispatcher)(nil)

// sessionDispatcher runs every session actor's mailbox.
var sessionDispatcher = newWorkerDispatcher(300)
