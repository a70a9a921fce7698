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
