package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nanoactor/nanoactor/config"
	"github.com/nanoactor/nanoactor/supervisor"
)

// startTestBroker runs the broker in-process on a loopback TCP listener and
// returns its host and port; it shuts down with the test.
func startTestBroker(t *testing.T) (string, string) {
	t.Helper()
	doc := "[log]\nlevel = \"error\"\n[[listener]]\nname = \"test\"\nprotocol = \"tcp\"\nbind = \"127.0.0.1:0\"\n"
	cfg, err := config.Parse("test.toml", []byte(doc))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	node, err := supervisor.Start(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		node.Shutdown(ctx)
	})
	h, p, _ := net.SplitHostPort(node.Addrs()[0].String())
	return h, p
}

// syncBuffer is a bytes.Buffer safe for a writer and a concurrent reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runCmd runs the command line args and returns its exit code and output.
func runCmd(args ...string) (int, string, string) {
	var out, errb syncBuffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// startSub runs "sub args" in the background and waits until it has
// subscribed (a probe message published on probeTopic arrives).
type bgSub struct {
	done      chan struct{}
	code      int
	out, errb syncBuffer
}

func startSub(t *testing.T, args ...string) *bgSub {
	t.Helper()
	s := &bgSub{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.code = run(append([]string{"sub"}, args...), &s.out, &s.errb)
	}()
	return s
}

func (s *bgSub) wait(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("sub did not exit; stdout %q stderr %q", s.out.String(), s.errb.String())
	}
}

// pubUntil publishes args until the background sub exits (it may not have
// subscribed yet when the first message goes).
func pubUntil(t *testing.T, s *bgSub, args ...string) {
	t.Helper()
	for {
		if code, _, errs := runCmd(append([]string{"pub"}, args...)...); code != 0 {
			t.Fatalf("pub: exit %d: %s", code, errs)
		}
		select {
		case <-s.done:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestPubSubCommands(t *testing.T) {
	h, p := startTestBroker(t)
	for _, v := range []string{"31", "311", "5"} {
		for _, q := range []string{"0", "1", "2"} {
			t.Run("v"+v+"/q"+q, func(t *testing.T) {
				topic := "cmd/" + v + "/" + q
				s := startSub(t, "-h", h, "-p", p, "-t", topic, "-q", q, "-V", v, "-C", "1", "-v")
				pubUntil(t, s, "-h", h, "-p", p, "-t", topic, "-m", "hello world", "-q", q, "-V", v)
				s.wait(t)
				if s.code != 0 || s.out.String() != topic+" hello world\n" {
					t.Fatalf("sub: exit %d, stdout %q, stderr %q", s.code, s.out.String(), s.errb.String())
				}
			})
		}
	}
}

func TestPubURLAndFormat(t *testing.T) {
	h, p := startTestBroker(t)
	s := startSub(t, "-L", "mqtt://"+net.JoinHostPort(h, p)+"/a/b", "-V", "5", "-C", "1", "-F", `%t|%p|%q|%l\n`)
	pubUntil(t, s, "-L", "mqtt://"+net.JoinHostPort(h, p)+"/a/b", "-V", "5", "-q", "1", "-n")
	s.wait(t)
	if s.code != 0 || s.out.String() != "a/b||0|0\n" {
		t.Fatalf("sub: exit %d, stdout %q, stderr %q", s.code, s.out.String(), s.errb.String())
	}
}

func TestSubTimeout(t *testing.T) {
	h, p := startTestBroker(t)
	code, _, errs := runCmd("sub", "-h", h, "-p", p, "-t", "none", "-W", "1")
	if code != exitTimeout || !strings.Contains(errs, "timed out") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

func TestToolErrors(t *testing.T) {
	h, p := startTestBroker(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	_, closed, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"pub", "-t", "x"}, exitUsage, "exactly one of"},
		{[]string{"pub", "-m", "x"}, exitUsage, "no topic"},
		{[]string{"pub", "-t", "x", "-m", "y", "-q", "3"}, exitUsage, "qos must be"},
		{[]string{"pub", "-t", "x", "-m", "y", "-V", "7"}, exitUsage, "unknown protocol version"},
		{[]string{"pub", "--bogus"}, exitUsage, "flag provided but not defined"},
		{[]string{"sub", "-h", h, "-p", p}, exitUsage, "no topic"},
		{[]string{"pub", "-h", "127.0.0.1", "-p", closed, "-t", "x", "-m", "y"}, exitFail, "connection refused"},
		// 3.1.1 with an empty client id and a persistent session: CONNACK 0x02.
		{[]string{"pub", "-h", h, "-p", p, "-t", "x", "-m", "y", "-c", "-i", ""}, exitUsage, "-c needs a client id"},
		{[]string{"sub", "-h", h, "-p", p, "-t", "a/#/b"}, exitFail, "refused"},
		{[]string{"bench", "nope"}, exitUsage, "unknown mode"},
		{[]string{"bench", "pub", "-s", "3"}, exitUsage, "at least 24"},
	} {
		code, _, errs := runCmd(tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.err) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tc.args, code, errs, tc.code, tc.err)
		}
	}
	if code, out, _ := runCmd("pub", "--help"); code != 0 || !strings.Contains(out, "-h string") {
		t.Errorf("pub --help: exit %d, %q", code, out)
	}
}

// TestMosquittoPeer runs the tools against Debian's mosquitto broker when
// it is installed, and our pub against mosquitto_sub.
func TestMosquittoPeer(t *testing.T) {
	path, err := exec.LookPath("mosquitto")
	if err != nil {
		t.Skip("mosquitto not installed; skipping")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	cmd := exec.Command(path, "-p", p)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", "localhost:"+p); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("mosquitto did not start")
		}
	}
	for _, v := range []string{"311", "5"} {
		s := startSub(t, "-p", p, "-t", "m/"+v, "-q", "2", "-V", v, "-C", "1")
		pubUntil(t, s, "-p", p, "-t", "m/"+v, "-m", "via mosquitto", "-q", "2", "-V", v)
		s.wait(t)
		if s.code != 0 || s.out.String() != "via mosquitto\n" {
			t.Fatalf("v%s: exit %d, stdout %q, stderr %q", v, s.code, s.out.String(), s.errb.String())
		}
	}
	code, out, errs := runCmd("bench", "pubsub", "-p", p, "-c", "2", "-d", "1", "-I", "5", "-q", "1")
	if code != 0 || !strings.Contains(out, "lost=0 duplicated=0 out_of_order=0") {
		t.Fatalf("bench via mosquitto: exit %d\n%s\n%s", code, out, errs)
	}
}
