package transport

import (
	"fmt"
	"net"
	"strconv"
	"sync/atomic"
)

// FaultMode selects the fault a FaultPlan injects into an Outbound's send
// path. It takes effect at the writer's next batch.
type FaultMode uint32

const (
	// FaultNone injects nothing.
	FaultNone FaultMode = iota
	// FaultError makes the batch write fail with ErrInjected: the Outbound
	// closes with ReasonWriteError.
	FaultError
	// FaultPanic makes the writer goroutine panic: the panic is recovered and
	// the Outbound closes with ReasonPanic.
	FaultPanic
	// FaultInvalid hands the writer an invalid (nil) buffer: the Outbound
	// fails closed with ReasonInvalidBuffer.
	FaultInvalid
	// FaultStall makes the writer stop making progress, without a write
	// deadline, until the Outbound is closed; Stalled then reports true once
	// the owner's limit has passed.
	FaultStall
)

func (m FaultMode) String() string {
	switch m {
	case FaultNone:
		return "none"
	case FaultError:
		return "error"
	case FaultPanic:
		return "panic"
	case FaultInvalid:
		return "invalid"
	case FaultStall:
		return "stall"
	}
	return "fault " + strconv.Itoa(int(m))
}

// FaultPlan is the test-only fault-injection seam of an Outbound
// (Options.Faults). Production code leaves it nil, which costs the writer one
// nil check per batch. The mode may be changed from any goroutine at any
// time; the zero value injects nothing.
type FaultPlan struct {
	mode atomic.Uint32
}

// Set selects the fault for following batches.
func (p *FaultPlan) Set(m FaultMode) { p.mode.Store(uint32(m)) }

// Mode returns the current fault.
func (p *FaultPlan) Mode() FaultMode { return FaultMode(p.mode.Load()) }

// errInjectedInvalid is what the writer's check of an injected nil buffer
// returns; it wraps ErrInvalidBuffer so the close reason is the one a real
// invalid buffer gets.
var errInjectedInvalid = fmt.Errorf("injected nil buffer: %w", ErrInvalidBuffer)

// injectedPanic is the value FaultPanic panics with.
type injectedPanic struct{}

func (injectedPanic) Error() string { return "transport: injected panic" }

// inject applies p's fault to the batch about to be written. It returns nil
// when there is nothing to inject.
func (o *Outbound) inject(p *FaultPlan) error {
	switch p.Mode() {
	case FaultError:
		return ErrInjected
	case FaultPanic:
		panic(injectedPanic{})
	case FaultInvalid:
		return errInjectedInvalid
	case FaultStall:
		for !o.quitting.Load() {
			<-o.wake // closeWith sets quitting, then wakes the writer
		}
		return net.ErrClosed
	}
	return nil
}
