package actors

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// Mailbox of the connection and session actors: two per client.
//
// protoactor's default unbounded mailbox is a lock-free system queue and a
// ring buffer of ten slots, ~380 bytes an actor before a message arrives.
// This one behaves the same — system messages first, suspension while a
// failure is decided, a yield every Throughput messages, a panic escalated
// to the supervisor — in one struct with one lock: its user ring is one
// slot of its own until two messages wait at once, then grows as needed, a
// ring grown by a burst is given back once it drains, and system messages
// (rare) are a list of their own. 128 bytes. Unbounded, as DESIGN.md asks:
// the bounds are ours (reader credit, session queues, the Outbound).
type mailbox struct {
	mu   sync.Mutex
	user ring // under mu
	// System messages, oldest first, under mu.
	sysHead, sysTail *sysNode

	userN, sysN int32 // posted, not yet taken (atomic)
	running     int32 // mailboxIdle or mailboxRunning (atomic)
	suspended   int32 // 1 while a failure is being decided (atomic)

	invoker    actor.MessageInvoker
	dispatcher actor.Dispatcher
	proc       func() // m.process, made once: a method value allocates
}

const (
	mailboxIdle int32 = iota
	mailboxRunning
)

// compactMailbox is the actor.MailboxProducer of connection and session
// actors.
func compactMailbox() actor.Mailbox { return new(mailbox) }

var _ actor.Mailbox = (*mailbox)(nil)

// PostUserMessage implements actor.Mailbox. Like the default mailbox, a
// MessageBatch is posted message by message and then as itself.
func (m *mailbox) PostUserMessage(msg any) {
	if batch, ok := msg.(actor.MessageBatch); ok {
		for _, x := range batch.GetMessages() {
			m.PostUserMessage(x)
		}
	}
	if env, ok := msg.(*actor.MessageEnvelope); ok {
		if batch, ok := env.Message.(actor.MessageBatch); ok {
			for _, x := range batch.GetMessages() {
				m.PostUserMessage(x)
			}
		}
	}
	m.mu.Lock()
	m.user.push(msg)
	m.mu.Unlock()
	atomic.AddInt32(&m.userN, 1)
	m.schedule()
}

// PostSystemMessage implements actor.Mailbox.
func (m *mailbox) PostSystemMessage(msg any) {
	m.mu.Lock()
	n := &sysNode{msg: msg}
	if m.sysTail == nil {
		m.sysHead = n
	} else {
		m.sysTail.next = n
	}
	m.sysTail = n
	m.mu.Unlock()
	atomic.AddInt32(&m.sysN, 1)
	m.schedule()
}

// RegisterHandlers implements actor.Mailbox. protoactor calls it once the
// actor exists, so an actor that wants its mailbox (mailboxOwner) is told
// here.
func (m *mailbox) RegisterHandlers(invoker actor.MessageInvoker, dispatcher actor.Dispatcher) {
	m.invoker, m.dispatcher = invoker, dispatcher
	m.proc = m.process
	if c, ok := invoker.(interface{ Actor() actor.Actor }); ok {
		if o, ok := c.Actor().(mailboxOwner); ok {
			o.setMailbox(m)
		}
	}
}

// mailboxOwner is an actor told its mailbox when spawned (see postLocal).
type mailboxOwner interface{ setMailbox(*mailbox) }

// inlineBudget is how many messages postLocal handles on its caller's
// goroutine before it hands the rest to the dispatcher.
const inlineBudget = 8

// postLocal posts a user message and, when the mailbox was idle, runs it
// at once on the calling goroutine — for at most inlineBudget messages,
// then the dispatcher takes what is left — instead of waking a dispatcher
// goroutine. The actor must never block, and the caller must be able to
// wait for its handling: a connection passes its client's packets to the
// session this way from its reader, which then reads on once the session
// has handled them (reader credit bounds the same thing). While the
// mailbox runs elsewhere, this is PostUserMessage: the message is queued
// and taken by that run. Either way one goroutine at a time runs the actor,
// in order. No MessageBatch or envelope unwrapping: the caller posts plain
// messages.
func (m *mailbox) postLocal(msg any) {
	m.mu.Lock()
	m.user.push(msg)
	m.mu.Unlock()
	atomic.AddInt32(&m.userN, 1)
	if !atomic.CompareAndSwapInt32(&m.running, mailboxIdle, mailboxRunning) {
		return
	}
	if m.run(inlineBudget) || m.settle() {
		m.dispatcher.Schedule(m.proc) // still running: the rest is the dispatcher's
	}
}

// Start implements actor.Mailbox.
func (m *mailbox) Start() {}

// UserMessageCount implements actor.Mailbox.
func (m *mailbox) UserMessageCount() int { return int(atomic.LoadInt32(&m.userN)) }

func (m *mailbox) schedule() {
	if atomic.CompareAndSwapInt32(&m.running, mailboxIdle, mailboxRunning) {
		m.dispatcher.Schedule(m.proc)
	}
}

// process runs on the dispatcher until the mailbox is empty (or suspended
// with only user messages left), then goes idle; a message posted after
// the run ended and before idle was set is picked up here.
func (m *mailbox) process() {
	for {
		m.run(0)
		if !m.settle() {
			return
		}
	}
}

// settle marks the mailbox idle after a run, and reports whether the
// caller took it running again for a message posted after the run ended
// and before idle was set (false: nothing to do, or a poster scheduled
// another run).
func (m *mailbox) settle() bool {
	atomic.StoreInt32(&m.running, mailboxIdle)
	sys, user := atomic.LoadInt32(&m.sysN), atomic.LoadInt32(&m.userN)
	if sys == 0 && (atomic.LoadInt32(&m.suspended) == 1 || user == 0) {
		return false
	}
	return atomic.CompareAndSwapInt32(&m.running, mailboxIdle, mailboxRunning)
}

// run handles messages, system ones first, until none is left or the
// mailbox is suspended (false), or, with a budget, until budget messages
// were handled (true: some may be left). Without one it yields the
// processor every Throughput messages.
func (m *mailbox) run(budget int) (spent bool) {
	var msg any
	defer func() {
		if r := recover(); r != nil {
			m.invoker.EscalateFailure(r, msg)
			spent = false
		}
	}()
	i, t := 0, m.dispatcher.Throughput()
	for {
		if budget > 0 && i == budget {
			return true
		}
		if budget == 0 && i > t {
			i = 0
			runtime.Gosched()
		}
		i++
		if msg = m.popSys(); msg != nil {
			atomic.AddInt32(&m.sysN, -1)
			switch msg.(type) {
			case *actor.SuspendMailbox:
				atomic.StoreInt32(&m.suspended, 1)
			case *actor.ResumeMailbox:
				atomic.StoreInt32(&m.suspended, 0)
			default:
				m.invoker.InvokeSystemMessage(msg)
			}
			continue
		}
		if atomic.LoadInt32(&m.suspended) == 1 {
			return false
		}
		m.mu.Lock()
		msg = m.user.pop()
		m.mu.Unlock()
		if msg == nil {
			return false
		}
		atomic.AddInt32(&m.userN, -1)
		m.invoker.InvokeUserMessage(msg)
	}
}

// popSys takes the next system message, or nil.
func (m *mailbox) popSys() any {
	if atomic.LoadInt32(&m.sysN) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.sysHead
	if n == nil {
		return nil
	}
	m.sysHead = n.next
	if m.sysHead == nil {
		m.sysTail = nil
	}
	return n.msg
}

// sysNode holds one system message in a mailbox's queue.
type sysNode struct {
	msg  any
	next *sysNode
}

// ring is a FIFO of messages: a power-of-two ring buffer, at first its own
// one slot (an actor that never has two messages waiting allocates
// nothing), doubled when full, and back to the one slot when it drains
// after a burst grew it past ringKeep slots. A ring is never copied.
type ring struct {
	buf  []any
	head int32
	n    int32
	one  [1]any
}

const ringKeep = 64

func (r *ring) push(x any) {
	if r.buf == nil {
		r.buf = r.one[:]
	}
	if int(r.n) == len(r.buf) {
		buf := make([]any, 2*len(r.buf))
		for i := int32(0); i < r.n; i++ {
			buf[i] = r.buf[(r.head+i)&int32(len(r.buf)-1)]
		}
		r.one[0] = nil
		r.buf, r.head = buf, 0
	}
	r.buf[(r.head+r.n)&int32(len(r.buf)-1)] = x
	r.n++
}

func (r *ring) pop() any {
	if r.n == 0 {
		return nil
	}
	x := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) & int32(len(r.buf)-1)
	r.n--
	if r.n == 0 {
		r.head = 0
		if len(r.buf) > ringKeep {
			r.buf = nil
		}
	}
	return x
}
