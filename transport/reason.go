package transport

import (
	"errors"
	"fmt"
	"strconv"
)

// CloseReason says why a connection was closed. The first reason recorded
// wins; later closes keep it. The zero value, ReasonNone, means "still open"
// and is never recorded.
type CloseReason uint8

// Close reasons. The transport records the ones marked "writer"; the others
// are for the connection's owner to pass to CloseWith or CloseAfter.
const (
	ReasonNone          CloseReason = iota // still open
	ReasonClosed                           // owner: closed without a more specific reason
	ReasonInvalidBuffer                    // transport: a nil or empty buffer reached the send path
	ReasonWriteError                       // writer: the write failed
	ReasonWriteTimeout                     // writer: a batch missed its write deadline
	ReasonPanic                            // writer: a panic was recovered in the writer goroutine
	ReasonStalled                          // owner's watchdog: bytes pending and no write progress
	ReasonSlowConsumer                     // owner's policy after ErrQueueFull
	ReasonReadError                        // reader: the read failed
	ReasonPeerClosed                       // reader: the peer closed its side (EOF)
	ReasonProtocol                         // owner: the peer broke the protocol
	ReasonIdle                             // owner: a keepalive or handshake timer expired
	ReasonReplaced                         // owner: another connection took this one's place
	ReasonShutdown                         // owner: the server is shutting down
	numReasons
)

var reasonNames = [numReasons]string{
	ReasonNone:          "open",
	ReasonClosed:        "closed",
	ReasonInvalidBuffer: "invalid buffer",
	ReasonWriteError:    "write error",
	ReasonWriteTimeout:  "write timeout",
	ReasonPanic:         "panic",
	ReasonStalled:       "write stalled",
	ReasonSlowConsumer:  "slow consumer",
	ReasonReadError:     "read error",
	ReasonPeerClosed:    "peer closed",
	ReasonProtocol:      "protocol error",
	ReasonIdle:          "idle timeout",
	ReasonReplaced:      "replaced",
	ReasonShutdown:      "server shutdown",
}

// String returns the reason as a short lowercase phrase for logs.
func (r CloseReason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "close reason " + strconv.Itoa(int(r))
}

var (
	// ErrClosed matches (errors.Is) every error returned by an Outbound that
	// has been closed or is flushing before a close. The concrete error is a
	// *CloseError holding the recorded reason.
	ErrClosed = errors.New("transport: connection closed")

	// ErrQueueFull is returned by Enqueue and EnqueueBatch when accepting the
	// buffers would take the pending bytes past Options.MaxPending. Nothing
	// was enqueued and the caller still owns the buffers; it applies its
	// policy (drop QoS 0, keep QoS 1/2 for redelivery, or disconnect).
	ErrQueueFull = errors.New("transport: outbound queue full")

	// ErrInvalidBuffer is the cause recorded when a nil or empty buffer is
	// handed to the send path. It is an impossible state: the Outbound fails
	// closed with ReasonInvalidBuffer.
	ErrInvalidBuffer = errors.New("transport: invalid buffer (nil or empty)")

	// ErrInjected is the write error produced by FaultError.
	ErrInjected = errors.New("transport: injected write fault")
)

// CloseError is the recorded reason a connection closed, with the underlying
// cause (nil when the owner gave none). It matches ErrClosed with errors.Is
// and unwraps to its cause, so errors.Is(err, os.ErrDeadlineExceeded) holds
// for a write timeout.
type CloseError struct {
	Reason CloseReason
	Err    error
}

func (e *CloseError) Error() string {
	if e.Err == nil {
		return "transport: " + e.Reason.String()
	}
	return "transport: " + e.Reason.String() + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *CloseError) Unwrap() error { return e.Err }

// Is reports whether target is ErrClosed.
func (e *CloseError) Is(target error) bool { return target == ErrClosed }

// PanicError is the cause recorded with ReasonPanic: the recovered value and
// the stack of the goroutine that panicked.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprint(e.Value) }

// Unwrap returns the recovered value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}
