package integration

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanoactor/nanoactor/config"
	"github.com/nanoactor/nanoactor/supervisor"
)

// broker is a running node under test.
type broker struct {
	t    *testing.T
	node *supervisor.Node
	addr string // host:port of the first listener
	logs *logBuffer
}

// logBuffer collects the broker's log lines (JSON) for assertions and
// prints them when a test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything logged so far.
func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Count returns how many log lines contain every one of subs.
func (l *logBuffer) Count(subs ...string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		ok := line != ""
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			n++
		}
	}
	return n
}

// startBroker starts a node from the TOML text extra (which may override
// any section; the default listener is replaced by one on 127.0.0.1:0
// unless extra declares its own [[listener]]). Logs are JSON at debug.
func startBroker(t *testing.T, extra string) *broker {
	t.Helper()
	doc := extra
	if !strings.Contains(extra, "[[listener]]") {
		doc = "[[listener]]\nname = \"test\"\nprotocol = \"tcp\"\nbind = \"127.0.0.1:0\"\n" + extra
	}
	if !strings.Contains(doc, "[log]") {
		doc = "[log]\nlevel = \"debug\"\nformat = \"json\"\n" + doc
	}
	cfg, err := config.Parse("test.toml", []byte(doc))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, doc)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: cfg.Log.SlogLevel()}))
	node, err := supervisor.Start(cfg, log)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	b := &broker{t: t, node: node, addr: node.Addrs()[0].String(), logs: logs}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// A test that shut the node down itself set b.node to nil.
		if b.node != nil {
			if err := node.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		}
		if t.Failed() {
			t.Logf("broker log:\n%s", logs.String())
		}
	})
	return b
}

// host and port of the broker's first listener.
func (b *broker) hostPort() (string, string) {
	h, p, _ := net.SplitHostPort(b.addr)
	return h, p
}

// needProgram returns the path of an external program, or skips the test
// (fails it under NANOACTOR_REQUIRE_PEERS=1) when it is missing.
func needProgram(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("NANOACTOR_REQUIRE_PEERS") == "1" {
			t.Fatalf("%s is required (NANOACTOR_REQUIRE_PEERS=1) but not installed", name)
		}
		t.Skipf("%s not installed; skipping (install it, or run .ci/run)", name)
	}
	return p
}

// eventually polls cond every 10ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
