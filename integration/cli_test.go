package integration

// The nanoactor command as a user runs it: built once per test run, then
// started as a process with configuration files, probed with real clients
// and stopped with SIGTERM.

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/nanoactor/nanoactor/protocol"
)

// cliBuild builds ./cmd/nanoactor into dir and returns the binary's path.
func cliBuild(t *testing.T, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "nanoactor")
	cmd := exec.Command(goBin, "build", "-o", bin, "./cmd/nanoactor")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/nanoactor: %v\n%s", err, out)
	}
	return bin
}

// cliRun runs the binary to completion (10 s at most) and returns its
// stdout, stderr and exit code.
func cliRun(t *testing.T, bin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("nanoactor %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("nanoactor %s: still running after 10s", strings.Join(args, " "))
	}
	return o.String(), e.String(), code
}

// cliProc is a running "nanoactor start"; its stderr (the log) is
// collected line by line.
type cliProc struct {
	t     *testing.T
	cmd   *exec.Cmd
	mu    sync.Mutex
	log   []string
	lines chan string
	done  chan struct{}
	code  int
}

func cliStart(t *testing.T, bin string, args ...string) *cliProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &cliProc{t: t, cmd: cmd, lines: make(chan string, 4096), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log = append(p.log, sc.Text())
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
		cmd.Wait()
		p.code = cmd.ProcessState.ExitCode()
		close(p.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("nanoactor log:\n%s", p.logText())
		}
	})
	return p
}

func (p *cliProc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, "\n")
}

// waitLog waits for a log line containing every one of subs.
func (p *cliProc) waitLog(d time.Duration, subs ...string) string {
	p.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case l := <-p.lines:
			ok := true
			for _, s := range subs {
				ok = ok && strings.Contains(l, s)
			}
			if ok {
				return l
			}
		case <-p.done:
			p.t.Fatalf("nanoactor exited (code %d) before logging %q", p.code, subs)
		case <-deadline:
			p.t.Fatalf("no log line with %q within %v", subs, d)
		}
	}
}

// exited waits for the process to exit and returns its code.
func (p *cliProc) exited(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.code
	case <-time.After(d):
		p.t.Fatalf("nanoactor still running after %v", d)
		return -1
	}
}

// cliFreePort returns a loopback port that was free a moment ago.
func cliFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// cliPortFree reports whether addr can be bound now.
func cliPortFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func cliWrite(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// cliServe proves a broker at addr serves clients: a paho 3.1.1 client
// receives what it publishes, and mosquitto_pub (when installed) reaches
// it too.
func cliServe(t *testing.T, addr, id string) *p3Client {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectTimeout(p3Wait)
	c := p3Connect(t, o)
	c.sub(t, "cli/#", 1)
	c.pub(t, "cli/self", 1, false, "self")
	if m := c.in.next(t, p3Wait, "own message"); m.Payload != "self" {
		t.Fatalf("got %v", m)
	}
	if path, err := exec.LookPath("mosquitto_pub"); err == nil {
		host, port, _ := net.SplitHostPort(addr)
		ipRun(t, path, "-h", host, "-p", port, "-t", "cli/mosq", "-q", "1", "-m", "from mosquitto_pub")
		if m := c.in.next(t, p3Wait, "message from mosquitto_pub"); m.Payload != "from mosquitto_pub" {
			t.Fatalf("got %v", m)
		}
	}
	return c
}

// TestCLI runs the built nanoactor binary.
func TestCLI(t *testing.T) {
	dir := t.TempDir()
	bin := cliBuild(t, dir)

	t.Run("version", func(t *testing.T) {
		out, errOut, code := cliRun(t, bin, "version")
		if code != 0 || !strings.HasPrefix(out, "nanoactor ") {
			t.Fatalf("exit %d stdout %q stderr %q, want 0 and \"nanoactor <version>\"", code, out, errOut)
		}
	})

	t.Run("no command is a usage error", func(t *testing.T) {
		if _, errOut, code := cliRun(t, bin); code == 0 || !strings.Contains(errOut, "usage") {
			t.Fatalf("exit %d stderr %q, want non-zero with usage", code, errOut)
		}
	})

	t.Run("config default passes config check", func(t *testing.T) {
		out, errOut, code := cliRun(t, bin, "config", "default")
		if code != 0 || !strings.Contains(out, "[[listener]]") || !strings.Contains(out, "[mqtt]") {
			t.Fatalf("config default: exit %d stderr %q stdout %.200q", code, errOut, out)
		}
		p := cliWrite(t, dir, "default.toml", out)
		if out, errOut, code := cliRun(t, bin, "config", "check", p); code != 0 {
			t.Fatalf("config check of the default file: exit %d stdout %q stderr %q", code, out, errOut)
		}
		// An empty file is the default configuration too.
		p = cliWrite(t, dir, "empty.toml", "")
		if out, errOut, code := cliRun(t, bin, "config", "check", p); code != 0 {
			t.Fatalf("config check of an empty file: exit %d stdout %q stderr %q", code, out, errOut)
		}
	})

	bad := []struct {
		name, text string
		line       int
		key        string
	}{
		{"unknown key", "[mqtt]\nmax_inflight = 10\nmax_packet_sise = 2048\n", 3, "mqtt.max_packet_sise"},
		{"wrong type", "[node]\nname = \"n1\"\n\n[mqtt]\nmax_inflight = \"many\"\n", 5, "mqtt.max_inflight"},
		{"out of range", "[mqtt]\nmaximum_qos = 3\n", 2, "mqtt.maximum_qos"},
		{"unknown listener protocol", "[[listener]]\nname = \"x\"\nprotocol = \"udp\"\nbind = \"127.0.0.1:18830\"\n", 3, "listener[0].protocol"},
		{"duplicate bind", "[[listener]]\nname = \"a\"\nbind = \"127.0.0.1:18831\"\n\n[[listener]]\nname = \"b\"\nbind = \"127.0.0.1:18831\"\n", 7, "listener[1].bind"},
		{"bad duration", "[mqtt]\nwrite_timeout = \"10 parsecs\"\n", 2, "mqtt.write_timeout"},
	}
	for _, tc := range bad {
		t.Run("config check "+tc.name, func(t *testing.T) {
			p := cliWrite(t, dir, strings.ReplaceAll(tc.name, " ", "-")+".toml", tc.text)
			out, errOut, code := cliRun(t, bin, "config", "check", p)
			if code == 0 {
				t.Fatalf("exit 0 for a bad file; stdout %q", out)
			}
			re := regexp.MustCompile("(?m)^" + regexp.QuoteMeta(p) + ":" + fmt.Sprint(tc.line) + ": " + regexp.QuoteMeta(tc.key) + ": .+$")
			if !re.MatchString(errOut) {
				t.Fatalf("stderr %q, want a line %s:%d: %s: <message>", errOut, p, tc.line, tc.key)
			}
		})
	}

	t.Run("start with a bad file opens no listener", func(t *testing.T) {
		port := cliFreePort(t)
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		p := cliWrite(t, dir, "bad-start.toml", fmt.Sprintf(
			"[log]\nformat = \"json\"\n\n[[listener]]\nname = \"x\"\nbind = %q\n\n[mqtt]\nmax_inflight = 0\n", addr))
		proc := cliStart(t, bin, "start", "--config", p)
		// Probe the port while the process runs: it must never accept.
		accepted := false
		for giveUp := time.Now().Add(10 * time.Second); time.Now().Before(giveUp); {
			select {
			case <-proc.done:
			default:
				if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
					c.Close()
					accepted = true
				}
				time.Sleep(2 * time.Millisecond)
				continue
			}
			break
		}
		code := proc.exited(10 * time.Second)
		log := proc.logText()
		if code == 0 {
			t.Fatalf("start with a bad file exited 0; log:\n%s", log)
		}
		if !regexp.MustCompile(regexp.QuoteMeta(p) + `:9: mqtt\.max_inflight: `).MatchString(log) {
			t.Errorf("stderr %q, want the file:line: key: message error", log)
		}
		if accepted || strings.Contains(log, `"listening"`) {
			t.Errorf("a listener was opened before the configuration was rejected (accepted=%v); log:\n%s", accepted, log)
		}
		if !cliPortFree(addr) {
			t.Errorf("%s not free after the failed start", addr)
		}
	})

	t.Run("start fails cleanly when a port is taken", func(t *testing.T) {
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		free := fmt.Sprintf("127.0.0.1:%d", cliFreePort(t))
		p := cliWrite(t, dir, "taken.toml", fmt.Sprintf(
			"[log]\nformat = \"json\"\n\n[[listener]]\nname = \"free\"\nbind = %q\n\n[[listener]]\nname = \"taken\"\nbind = %q\n",
			free, taken.Addr().String()))
		proc := cliStart(t, bin, "start", "--config", p)
		if code := proc.exited(10 * time.Second); code == 0 {
			t.Fatalf("exit 0 although %s is taken", taken.Addr())
		}
		if log := proc.logText(); !strings.Contains(log, "taken") {
			t.Errorf("log does not name the listener that failed:\n%s", log)
		}
		if !cliPortFree(free) {
			t.Errorf("listener %s opened before the failure is still bound", free)
		}
	})

	t.Run("start serves clients and SIGTERM stops it", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", cliFreePort(t))
		p := cliWrite(t, dir, "good.toml", fmt.Sprintf(
			"[log]\nformat = \"json\"\n\n[[listener]]\nname = \"cli\"\nbind = %q\n", addr))
		proc := cliStart(t, bin, "start", "--config", p)
		proc.waitLog(10*time.Second, `"listening"`, addr)
		lost := make(chan struct{})
		o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("cli-311").SetProtocolVersion(4).
			SetAutoReconnect(false).SetConnectTimeout(p3Wait).
			SetConnectionLostHandler(func(mqtt.Client, error) { close(lost) })
		c311 := p3Connect(t, o)
		c311.sub(t, "cli/x", 1)
		cliServe(t, addr, "cli-serve")
		v5 := p3Dial(t, addr, protocol.Version5)
		if ack := v5.connect(&protocol.Connect{Level: protocol.Version5, CleanStart: true, KeepAlive: 30, ClientID: []byte("cli-v5")}); ack.Reason != 0 {
			t.Fatalf("v5 CONNACK %v", ack.Reason)
		}

		start := time.Now()
		if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// [MQTT-4.13.2-1]-style server-initiated close: v5 clients get
		// DISCONNECT 0x8B Server shutting down, then the socket closes.
		got := v5.closed(5*time.Second, "v5 client during shutdown")
		if len(got) != 1 || got[0].Type() != protocol.TypeDisconnect || got[0].(*protocol.Disconnect).Reason != protocol.ReasonServerShuttingDown {
			t.Errorf("v5 client received %v before the close, want one DISCONNECT 0x8B", got)
		}
		select {
		case <-lost:
		case <-time.After(5 * time.Second):
			t.Error("3.1.1 client still connected 5s after SIGTERM")
		}
		if code := proc.exited(5 * time.Second); code != 0 {
			t.Errorf("exit code %d after SIGTERM, want 0", code)
		}
		t.Logf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
		if !cliPortFree(addr) {
			t.Errorf("%s still bound after exit", addr)
		}
	})

	t.Run("start without config listens on 127.0.0.1:1883", func(t *testing.T) {
		const addr = "127.0.0.1:1883"
		if !cliPortFree(addr) {
			t.Skipf("%s is in use on this machine; cannot test the default listener", addr)
		}
		proc := cliStart(t, bin, "start")
		proc.waitLog(10*time.Second, "listening", addr)
		cliServe(t, addr, "cli-default")
		if err := proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := proc.exited(5 * time.Second); code != 0 {
			t.Errorf("exit code %d after SIGTERM, want 0", code)
		}
	})
}

// TestCLISighupReloadsCertificates starts the binary with a TLS listener,
// replaces the certificate files, sends SIGHUP and checks that new clients
// see the new certificate while the process keeps running.
func TestCLISighupReloadsCertificates(t *testing.T) {
	dir := t.TempDir()
	bin := cliBuild(t, dir)
	pkiA, pkiB := newTestPKI(t), newTestPKI(t)
	cert, key := dir+"/server.pem", dir+"/server.key"
	copyFile(t, pkiA.certFile, cert)
	copyFile(t, pkiA.keyFile, key)
	port := cliFreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := cliWrite(t, dir, "tls.toml", fmt.Sprintf("[[listener]]\nprotocol = \"tls\"\nbind = %q\ncert_file = %q\nkey_file = %q\n", addr, cert, key))
	p := cliStart(t, bin, "start", "--config", cfg)
	p.waitLog(10*time.Second, "nanoactor started")
	dialWith := func(k *testPKI) dialFunc {
		return func() (net.Conn, error) { return tls.Dial("tcp", addr, k.clientTLS()) }
	}
	c, _, err := streamConnect(dialWith(pkiA), "before", true)
	if err != nil {
		t.Fatalf("before reload: %v", err)
	}
	c.nc.Close()
	copyFile(t, pkiB.certFile, cert)
	copyFile(t, pkiB.keyFile, key)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitLog(10*time.Second, "certificate reloaded")
	c, _, err = streamConnect(dialWith(pkiB), "after", true)
	if err != nil {
		t.Fatalf("after SIGHUP: %v", err)
	}
	c.nc.Close()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.exited(15 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM", code)
	}
}
