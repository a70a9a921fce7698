package actors

import (
	"sync"
	"sync/atomic"
)

// handoff carries what an actor instance must know across a supervisor
// restart. Connection and session actors are spawned from one shared Props
// each, whose producer cannot tell which actor it makes: on a restart the
// old instance, on Restarting, leaves its state here under its PID id, and
// the new instance takes it on Started. Both run one after the other on the
// restarting actor's goroutine. Restarts are rare: take costs one atomic
// load when none is pending.
type handoff struct {
	n  atomic.Int32
	mu sync.Mutex
	m  map[string]any
}

func (h *handoff) put(id string, v any) {
	h.mu.Lock()
	if h.m == nil {
		h.m = map[string]any{}
	}
	if _, ok := h.m[id]; !ok {
		h.n.Add(1)
	}
	h.m[id] = v
	h.mu.Unlock()
}

// take returns and forgets what was left under id, or nil.
func (h *handoff) take(id string) any {
	if h.n.Load() == 0 {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.m[id]
	if ok {
		delete(h.m, id)
		h.n.Add(-1)
	}
	return v
}
