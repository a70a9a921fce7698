package client

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a client goroutine behind.
// The in-process broker's actor system keeps process-wide goroutines, which
// are not ours to check here.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"),
		// The session worker pool is process-wide: an idle worker exits
		// after workerIdle (2 s), which may be after the test ends.
		goleak.IgnoreAnyFunction("github.com/nanoactor/nanoactor/actors.(*workerDispatcher).worker"))
}
