package supervisor

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		m := map[string]any{}
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

type boom struct{}

// TestStrategyLogsAndApplies makes a child fail and checks that the
// strategy applies the directive and writes one structured line with the
// node, tree, child, reason, directive and restarts in the window.
func TestStrategyLogsAndApplies(t *testing.T) {
	for _, tc := range []struct {
		name      string
		directive actor.Directive
		want      string
		alive     bool
	}{
		{"stop", actor.StopDirective, "stop", false},
		{"resume", actor.ResumeDirective, "resume", true},
		{"restart", actor.RestartDirective, "restart", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := &syncBuf{}
			log := slog.New(slog.NewJSONHandler(buf, nil))
			sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
				return slog.New(slog.DiscardHandler)
			}))
			defer sys.Shutdown()
			s := &Strategy{Tree: "pipes", Node: "n1", Log: log, MaxRestarts: 3, Within: time.Minute,
				Decide:   func(any) actor.Directive { return tc.directive },
				Describe: func(any) []any { return []any{"client", "c1"} }}
			childCh := make(chan *actor.PID, 1)
			pong := make(chan struct{}, 4)
			parent := actor.PropsFromFunc(func(ctx actor.Context) {
				if _, ok := ctx.Message().(*actor.Started); ok {
					childCh <- ctx.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
						switch ctx.Message().(type) {
						case *boom:
							panic("injected failure")
						case string:
							pong <- struct{}{}
						}
					}))
				}
			}, actor.WithSupervisor(s))
			sys.Root.Spawn(parent)
			child := <-childCh
			sys.Root.Send(child, &boom{})
			deadline := time.Now().Add(5 * time.Second)
			for s.Events() == 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if s.Events() != 1 {
				t.Fatalf("events = %d, want 1", s.Events())
			}
			var line map[string]any
			for _, l := range buf.lines() {
				if l["msg"] == "supervision" {
					line = l
				}
			}
			if line == nil {
				t.Fatal("no supervision log line")
			}
			for k, v := range map[string]any{"node": "n1", "tree": "pipes", "directive": tc.want,
				"reason": "injected failure", "client": "c1", "child": child.Id} {
				if line[k] != v {
					t.Errorf("%s = %v, want %v (line %v)", k, line[k], v, line)
				}
			}
			if _, ok := line["restarts_in_window"]; !ok {
				t.Errorf("no restarts_in_window in %v", line)
			}
			sys.Root.Send(child, "ping")
			select {
			case <-pong:
				if !tc.alive {
					t.Fatal("stopped child still answers")
				}
			case <-time.After(300 * time.Millisecond):
				if tc.alive {
					t.Fatal("child does not answer after " + tc.want)
				}
			}
		})
	}
}

// TestRestartLimitStops checks that restarts beyond the window's limit
// become a stop.
func TestRestartLimitStops(t *testing.T) {
	buf := &syncBuf{}
	s := &Strategy{Tree: "sessions", Node: "n1", Log: slog.New(slog.NewJSONHandler(buf, nil)), MaxRestarts: 2,
		Within: time.Minute, Decide: func(any) actor.Directive { return actor.RestartDirective }}
	sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return slog.New(slog.DiscardHandler)
	}))
	defer sys.Shutdown()
	childCh := make(chan *actor.PID, 1)
	sys.Root.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
		if _, ok := ctx.Message().(*actor.Started); ok {
			childCh <- ctx.Spawn(actor.PropsFromFunc(func(ctx actor.Context) {
				if _, ok := ctx.Message().(*boom); ok {
					panic("again")
				}
			}))
		}
	}, actor.WithSupervisor(s)))
	child := <-childCh
	for i := 0; i < 3; i++ {
		sys.Root.Send(child, &boom{})
		deadline := time.Now().Add(5 * time.Second)
		for s.Events() < i+1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	var dirs []string
	for _, l := range buf.lines() {
		dirs = append(dirs, l["directive"].(string))
	}
	if strings.Join(dirs, ",") != "restart,restart,stop" {
		t.Fatalf("directives %v, want restart,restart,stop", dirs)
	}
}
