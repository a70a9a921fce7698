// Package supervisor owns nanoactor's restart policies: the strategies
// that decide what happens to a failed actor, each decision written as one
// structured log line ("monitored through supervisor logs" is a promise to
// users: time, node, tree, child, reason, directive, restarts in window).
package supervisor

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Describer adds what is known about a child (client id, remote address,
// listener, pipe id) to its supervision log line.
type Describer func(child any) []any

// Strategy is a one-for-one supervisor strategy that logs every decision.
// Decide maps a failure to a directive; a Restart beyond MaxRestarts within
// Within becomes Stop.
type Strategy struct {
	Tree        string // "pipes", "sessions", "topics"
	Node        string
	Log         *slog.Logger
	Decide      func(reason any) actor.Directive
	MaxRestarts int
	Within      time.Duration
	Describe    Describer

	mu     sync.Mutex
	events int
}

// HandleFailure implements actor.SupervisorStrategy. It runs on the
// parent's goroutine and never blocks.
func (s *Strategy) HandleFailure(sys *actor.ActorSystem, sup actor.Supervisor, child *actor.PID,
	rs *actor.RestartStatistics, reason any, message any) {
	dir := s.Decide(reason)
	if dir == actor.RestartDirective {
		rs.Fail()
		if rs.NumberOfFailures(s.Within) > s.MaxRestarts {
			rs.Reset()
			dir = actor.StopDirective
		}
	}
	attrs := []any{"node", s.Node, "tree", s.Tree, "child", child.Id, "reason", fmt.Sprint(reason),
		"directive", directiveName(dir), "restarts_in_window", rs.NumberOfFailures(s.Within)}
	if message != nil {
		attrs = append(attrs, "message", fmt.Sprintf("%T", message))
	}
	if s.Describe != nil {
		attrs = append(attrs, s.Describe(child)...)
	}
	s.Log.Warn("supervision", attrs...)
	s.mu.Lock()
	s.events++
	s.mu.Unlock()
	switch dir {
	case actor.ResumeDirective:
		sup.ResumeChildren(child)
	case actor.RestartDirective:
		sup.RestartChildren(child)
	case actor.StopDirective:
		sup.StopChildren(child)
	case actor.EscalateDirective:
		sup.EscalateFailure(reason, message)
	}
}

// Events returns how many failures this strategy has handled.
func (s *Strategy) Events() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.events
}

func directiveName(d actor.Directive) string {
	switch d {
	case actor.ResumeDirective:
		return "resume"
	case actor.RestartDirective:
		return "restart"
	case actor.StopDirective:
		return "stop"
	case actor.EscalateDirective:
		return "escalate"
	}
	return "unknown"
}

// Policies are the strategies of the broker's actor tree.
type Policies struct {
	Pipes, Sessions, Topics, Bridges *Strategy
}

// Default returns the tree's policies:
//   - pipes: a failed connection actor is stopped, which closes its socket;
//     its session is kept for the client's return.
//   - sessions: a failed session actor resumes with its state (there is no
//     store to reload from yet), at most 10 times in 10 s, then stops.
//   - topics: the topic actor resumes; its index and retained messages are
//     kept outside the actor instance.
//   - bridges: a failed bridge actor restarts (its links are closed and
//     dialled again; the outbox and QoS 2 state are kept outside the actor
//     instance), at most 10 times a minute, then stops.
func Default(node string, log *slog.Logger, describePipe Describer) Policies {
	return Policies{
		Pipes: &Strategy{Tree: "pipes", Node: node, Log: log, Describe: describePipe,
			Decide: func(any) actor.Directive { return actor.StopDirective }},
		Sessions: &Strategy{Tree: "sessions", Node: node, Log: log, MaxRestarts: 10, Within: 10 * time.Second,
			Decide: func(any) actor.Directive { return actor.ResumeDirective }},
		Topics: &Strategy{Tree: "topics", Node: node, Log: log, MaxRestarts: 10, Within: 10 * time.Second,
			Decide: func(any) actor.Directive { return actor.ResumeDirective }},
		Bridges: &Strategy{Tree: "bridges", Node: node, Log: log, MaxRestarts: 10, Within: time.Minute,
			Decide: func(any) actor.Directive { return actor.RestartDirective }},
	}
}
