package transport

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: every
// writer, accept loop and handler must have exited.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
