package actors

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

func TestRing(t *testing.T) {
	var r ring
	next, want := 0, 0
	for round := 0; round < 50; round++ {
		for i := 0; i < round*7%90; i++ {
			r.push(next)
			next++
		}
		for i := 0; i < round*5%90; i++ {
			x := r.pop()
			if x == nil {
				break
			}
			if x.(int) != want {
				t.Fatalf("got %v, want %d", x, want)
			}
			want++
		}
	}
	for x := r.pop(); x != nil; x = r.pop() {
		if x.(int) != want {
			t.Fatalf("got %v, want %d", x, want)
		}
		want++
	}
	if want != next || r.n != 0 {
		t.Fatalf("drained %d of %d", want, next)
	}
	if len(r.buf) > ringKeep {
		t.Fatalf("a drained ring keeps %d slots", len(r.buf))
	}
}

// TestMailboxOrderAndSupervision: the compact mailbox delivers every
// sender's messages in order, with several senders at once, and a panic is
// escalated: under Resume the actor carries on with the next message, under
// Restart a new instance does.
func TestMailboxOrderAndSupervision(t *testing.T) {
	for _, dir := range []actor.Directive{actor.ResumeDirective, actor.RestartDirective} {
		sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return slog.New(slog.DiscardHandler)
		}))
		const senders, each = 4, 20000
		var got atomic.Int64
		var started atomic.Int32
		last := make([]int, senders)
		done := make(chan struct{})
		type msg struct{ from, seq int }
		props := actor.PropsFromFunc(func(ctx actor.Context) {
			switch m := ctx.Message().(type) {
			case *actor.Started:
				started.Add(1)
			case *msg:
				if m.seq != last[m.from]+1 {
					t.Errorf("sender %d: %d after %d", m.from, m.seq, last[m.from])
				}
				last[m.from] = m.seq
				if got.Add(1) == senders*each {
					close(done)
				}
				if m.seq == each/2 && m.from == 0 {
					panic("injected")
				}
			}
		}, actor.WithMailbox(compactMailbox))
		parent := actor.PropsFromFunc(func(ctx actor.Context) {
			if _, ok := ctx.Message().(*actor.Started); ok {
				child := ctx.Spawn(props)
				var wg sync.WaitGroup
				for s := 0; s < senders; s++ {
					wg.Add(1)
					go func(s int) {
						defer wg.Done()
						for i := 1; i <= each; i++ {
							sys.Root.Send(child, &msg{from: s, seq: i})
						}
					}(s)
				}
				go wg.Wait()
			}
		}, actor.WithSupervisor(actor.NewOneForOneStrategy(10, time.Minute, func(any) actor.Directive { return dir })))
		sys.Root.Spawn(parent)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("directive %v: %d of %d messages", dir, got.Load(), senders*each)
		}
		wantStarts := int32(1)
		if dir == actor.RestartDirective {
			wantStarts = 2
		}
		if n := started.Load(); n != wantStarts {
			t.Errorf("directive %v: started %d times, want %d", dir, n, wantStarts)
		}
		sys.Shutdown()
	}
}

// BenchmarkMailbox: one sender, one actor, pointer messages; compact is
// this package's mailbox, default protoactor's Unbounded.
func BenchmarkMailbox(b *testing.B) {
	for _, mb := range []struct {
		name string
		p    actor.MailboxProducer
	}{{"compact", compactMailbox}, {"default", actor.Unbounded()}} {
		b.Run(mb.name, func(b *testing.B) {
			sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
				return slog.New(slog.DiscardHandler)
			}))
			defer sys.Shutdown()
			done := make(chan struct{})
			n := 0
			type msg struct{}
			m := &msg{}
			pid := sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
				if _, ok := ctx.Message().(*msg); ok {
					n++
					if n == b.N {
						close(done)
					}
				}
			}, actor.WithMailbox(mb.p)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sys.Root.Send(pid, m)
			}
			<-done
		})
	}
}

// localActor records what it handles and learns its mailbox
// (mailboxOwner), as a session does.
type localActor struct {
	mbp     atomic.Pointer[mailbox] // set on the spawner's goroutine
	mb      *mailbox                // mbp, once the test has seen it
	onMsg   func(ctx actor.Context, m any)
	inside  atomic.Int32
	overlap atomic.Int32
}

func (a *localActor) setMailbox(m *mailbox) { a.mbp.Store(m) }

// started waits until the actor is spawned, has handled Started and its
// mailbox is idle.
func (a *localActor) started(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if m := a.mbp.Load(); m != nil && atomic.LoadInt32(&m.running) == mailboxIdle && atomic.LoadInt32(&m.sysN) == 0 {
			a.mb = m
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("actor not started")
		}
		time.Sleep(time.Millisecond)
	}
}

func (a *localActor) Receive(ctx actor.Context) {
	if _, ok := ctx.Message().(actor.SystemMessage); ok {
		return
	}
	if _, ok := ctx.Message().(*actor.Started); ok {
		return
	}
	if a.inside.Add(1) != 1 {
		a.overlap.Add(1)
	}
	a.onMsg(ctx, ctx.Message())
	a.inside.Add(-1)
}

func spawnLocal(t *testing.T, a *localActor) (*actor.ActorSystem, *actor.PID) {
	t.Helper()
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	t.Cleanup(sys.Shutdown)
	pid := sys.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return a },
		actor.WithMailbox(compactMailbox), actor.WithDispatcher(newWorkerDispatcher(300))))
	a.started(t)
	return sys, pid
}

// TestMailboxPostLocalRunsHere: on an idle mailbox, postLocal handles the
// message before it returns, on the caller's goroutine; the mailbox is
// idle again afterwards.
func TestMailboxPostLocalRunsHere(t *testing.T) {
	var got []int
	a := &localActor{onMsg: func(_ actor.Context, m any) { got = append(got, m.(int)) }}
	spawnLocal(t, a)
	for i := 1; i <= 3; i++ {
		a.mb.postLocal(i)
		// No synchronisation: if the actor ran elsewhere, the race
		// detector and this check would see it.
		if len(got) != i || got[i-1] != i {
			t.Fatalf("after postLocal(%d): handled %v", i, got)
		}
		if atomic.LoadInt32(&a.mb.running) != mailboxIdle {
			t.Fatalf("after postLocal(%d): mailbox still running", i)
		}
	}
}

// TestMailboxPostLocalBudget: messages that arrive while postLocal runs
// the actor are handled there up to inlineBudget in all; the rest go to
// the dispatcher, in order.
func TestMailboxPostLocalBudget(t *testing.T) {
	const more = 3 * inlineBudget
	var handled atomic.Int32
	var order []int
	done := make(chan struct{})
	release := make(chan struct{}) // holds the first message past the budget
	var a *localActor
	a = &localActor{onMsg: func(_ actor.Context, m any) {
		n := m.(int)
		if n == 0 {
			for i := 1; i <= more; i++ {
				a.mb.PostUserMessage(i) // queued: the mailbox is running
			}
		}
		if n == inlineBudget {
			<-release // on the dispatcher's goroutine: postLocal has returned
		}
		order = append(order, n)
		if handled.Add(1) == more+1 {
			close(done)
		}
	}}
	spawnLocal(t, a)
	a.mb.postLocal(0)
	if n := handled.Load(); n != inlineBudget {
		t.Fatalf("postLocal handled %d before returning, want %d (its budget)", n, inlineBudget)
	}
	close(release)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("handled %d of %d", handled.Load(), more+1)
	}
	for i, n := range order {
		if n != i {
			t.Fatalf("order %v", order)
		}
	}
}

// TestMailboxPostLocalConcurrent: postLocal from several goroutines, with
// PostUserMessage from others, never runs the actor on two goroutines at
// once, and keeps each sender's order.
func TestMailboxPostLocalConcurrent(t *testing.T) {
	const senders, each = 6, 5000
	last := make([]int, senders)
	var total atomic.Int32
	done := make(chan struct{})
	type msg struct{ from, seq int }
	a := &localActor{onMsg: func(_ actor.Context, m any) {
		x := m.(*msg)
		if x.seq != last[x.from]+1 {
			t.Errorf("sender %d: %d after %d", x.from, x.seq, last[x.from])
		}
		last[x.from] = x.seq
		if total.Add(1) == senders*each {
			close(done)
		}
	}}
	sys, pid := spawnLocal(t, a)
	for s := 0; s < senders; s++ {
		go func(s int) {
			for i := 1; i <= each; i++ {
				if s%2 == 0 {
					a.mb.postLocal(&msg{s, i})
				} else {
					sys.Root.Send(pid, &msg{s, i})
				}
			}
		}(s)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("handled %d of %d", total.Load(), senders*each)
	}
	if n := a.overlap.Load(); n != 0 {
		t.Fatalf("the actor ran on two goroutines at once %d times", n)
	}
}

// TestMailboxPostLocalPanic: a panic while postLocal runs the actor is the
// supervisor's, as on the dispatcher: the caller carries on, and under
// Resume so does the actor.
func TestMailboxPostLocalPanic(t *testing.T) {
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer sys.Shutdown()
	got := make(chan int, 4)
	a := &localActor{onMsg: func(_ actor.Context, m any) {
		if m.(int) == 1 {
			panic("injected")
		}
		got <- m.(int)
	}}
	childProps := actor.PropsFromProducer(func() actor.Actor { return a }, actor.WithMailbox(compactMailbox))
	sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actor.Started); ok {
			ctx.Spawn(childProps)
		}
	}, actor.WithSupervisor(actor.NewOneForOneStrategy(10, time.Minute, func(any) actor.Directive { return actor.ResumeDirective }))))
	a.started(t)
	a.mb.postLocal(1) // panics inside; must not reach us
	a.mb.postLocal(2)
	select {
	case n := <-got:
		if n != 2 {
			t.Fatalf("got %d, want 2", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the actor did not resume after the panic")
	}
}
