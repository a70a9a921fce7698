package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/nanoactor/nanoactor/config"
	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/supervisor"
)

// startBroker runs the nanoactor broker in-process on a loopback TCP
// listener and returns its address; it shuts down with the test.
func startBroker(t *testing.T, extra string) string {
	t.Helper()
	doc := "[log]\nlevel = \"error\"\n[[listener]]\nname = \"test\"\nprotocol = \"tcp\"\nbind = \"127.0.0.1:0\"\n" + extra
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
	return node.Addrs()[0].String()
}

func dialT(t *testing.T, opts Options) *Client {
	t.Helper()
	c, err := Dial(context.Background(), opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestParseURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"mqtt://localhost", "mqtt://localhost:1883"},
		{"tcp://h:1", "mqtt://h:1"},
		{"tls://h", "mqtts://h:8883"},
		{"ws://h:8080/mqtt", "ws://h:8080/mqtt"},
		{"wss://h", "wss://h:443"},
		{"quic://h:14567", "quic://h:14567"},
	} {
		e, err := ParseURL(tc.in)
		if err != nil || e.String() != tc.want {
			t.Errorf("ParseURL(%q) = %v, %v; want %s", tc.in, e, err, tc.want)
		}
	}
	for _, bad := range []string{"http://h", "mqtt://", "::"} {
		if _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q): no error", bad)
		}
	}
}

func TestPubSub(t *testing.T) {
	addr := startBroker(t, "")
	pubSub(t, "mqtt://"+addr)
}

// pubSub checks QoS 0, 1 and 2 at 3.1.1 and 5 through the broker at url.
func pubSub(t *testing.T, url string) {
	for _, v := range []protocol.Version{protocol.Version311, protocol.Version5} {
		for qos := byte(0); qos <= 2; qos++ {
			t.Run(fmt.Sprintf("v%d/qos%d", v, qos), func(t *testing.T) {
				got := make(chan Message, 100)
				topic := fmt.Sprintf("t/%d/%d/%d", v, qos, time.Now().UnixNano())
				sub := dialT(t, Options{URL: url, Version: v, ClientID: "sub-" + topic, CleanStart: true,
					KeepAlive: 30 * time.Second, OnMessage: func(m Message) { got <- m }})
				rc, err := sub.Subscribe(context.Background(), protocol.Subscription{Filter: []byte(topic), QoS: qos})
				if err != nil || len(rc) != 1 || rc[0] != protocol.ReasonCode(qos) {
					t.Fatalf("subscribe: %v %v", rc, err)
				}
				pub := dialT(t, Options{URL: url, Version: v, CleanStart: true, ClientID: "pub-" + topic, Inflight: 4})
				const n = 20
				for i := range n {
					p := &protocol.Publish{Topic: []byte(topic), Payload: []byte(strconv.Itoa(i)), QoS: qos}
					if err := pub.Publish(context.Background(), p); err != nil {
						t.Fatalf("publish %d: %v", i, err)
					}
				}
				for i := range n {
					select {
					case m := <-got:
						if m.Topic != topic || string(m.Payload) != strconv.Itoa(i) || m.QoS != qos {
							t.Fatalf("message %d: %+v", i, m)
						}
					case <-time.After(5 * time.Second):
						t.Fatalf("message %d not received", i)
					}
				}
				if err := pub.Disconnect(); err != nil {
					t.Errorf("disconnect: %v", err)
				}
				select {
				case m := <-got:
					t.Fatalf("extra message %+v", m)
				case <-time.After(50 * time.Millisecond):
				}
			})
		}
	}
}

func TestAsyncWindow(t *testing.T) {
	addr := startBroker(t, "")
	url := "mqtt://" + addr
	got := make(chan Message, 1000)
	sub := dialT(t, Options{URL: url, Version: 5, CleanStart: true, OnMessage: func(m Message) { got <- m }})
	if _, err := sub.Subscribe(context.Background(), protocol.Subscription{Filter: []byte("w/#"), QoS: 2}); err != nil {
		t.Fatal(err)
	}
	pub := dialT(t, Options{URL: url, Version: 5, CleanStart: true, Inflight: 8})
	const n = 500
	acked := make(chan error, n)
	for i := range n {
		p := &protocol.Publish{Topic: []byte("w/x"), Payload: []byte(strconv.Itoa(i)), QoS: byte(1 + i%2)}
		if err := pub.PublishAsync(context.Background(), p, func(err error) { acked <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		if err := <-acked; err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case m := <-got:
			if string(m.Payload) != strconv.Itoa(i) {
				t.Fatalf("message %d: got %q", i, m.Payload)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("message %d not received", i)
		}
	}
}

func TestRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := Dial(context.Background(), Options{URL: "mqtt://" + addr}); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
	// A 3.1.1 client with an empty id and no clean session: identifier rejected.
	baddr := startBroker(t, "")
	_, err = Dial(context.Background(), Options{URL: "mqtt://" + baddr, Version: 4})
	var ce *ConnackError
	if !errors.As(err, &ce) || ce.Code != 0x02 {
		t.Fatalf("got %v, want connack error 0x02", err)
	}
}

func TestKeepAlive(t *testing.T) {
	addr := startBroker(t, "")
	c := dialT(t, Options{URL: "mqtt://" + addr, Version: 5, CleanStart: true, KeepAlive: time.Second})
	select {
	case <-c.Done():
		t.Fatalf("closed: %v", c.Err())
	case <-time.After(2500 * time.Millisecond):
	}
}

// TestMosquitto runs the pub/sub checks against Debian's mosquitto broker
// when it is installed.
func TestMosquitto(t *testing.T) {
	path, err := exec.LookPath("mosquitto")
	if err != nil {
		if os.Getenv("NANOACTOR_REQUIRE_PEERS") == "1" {
			t.Fatal("mosquitto is required (NANOACTOR_REQUIRE_PEERS=1) but not installed")
		}
		t.Skip("mosquitto not installed; skipping")
	}
	addr := startMosquitto(t, path)
	pubSub(t, "mqtt://"+addr)
}
