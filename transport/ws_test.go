package transport

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509/pkix"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/protocol/fixture"
)

func listenWSTest(tb testing.TB, conf *tls.Config, timeout time.Duration, backlog int) Listener {
	tb.Helper()
	l, err := listenWS("127.0.0.1:0", "/mqtt", conf, timeout, backlog)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// dialWS opens a WebSocket to l's /mqtt offering protos, over TLS with conf
// when conf is set. The connection is closed at cleanup.
func dialWS(tb testing.TB, l Listener, conf *tls.Config, protos ...string) (*websocket.Conn, *http.Response, error) {
	tb.Helper()
	tr := &http.Transport{TLSClientConfig: conf}
	tb.Cleanup(tr.CloseIdleConnections)
	scheme := "ws://"
	if conf != nil {
		scheme = "wss://"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, scheme+l.Addr().String()+"/mqtt", &websocket.DialOptions{
		HTTPClient:   &http.Client{Transport: tr},
		Subprotocols: protos,
	})
	if err == nil {
		tb.Cleanup(func() { c.CloseNow() })
	}
	return c, resp, err
}

func streamOf(c *websocket.Conn) net.Conn {
	return websocket.NetConn(context.Background(), c, websocket.MessageBinary)
}

// A byte stream goes through ws and wss listeners and back; on wss the
// server side sees the verified client certificate.
func TestWSEcho(t *testing.T) {
	pki := newPKI(t, "ca")
	cert := pki.client(pkix.Name{CommonName: "ws-client"}, []string{"ws.example"}, nil)
	for _, secure := range []bool{false, true} {
		name := map[bool]string{false: "ws", true: "wss"}[secure]
		t.Run(name, func(t *testing.T) {
			var server, client *tls.Config
			if secure {
				server = pki.store("server", true, 0).ServerConfig()
				client = pki.clientConfig(cert)
			}
			l := listenWSTest(t, server, 0, WSAcceptBacklog)
			ch := echoServer(t, l)
			ws, _, err := dialWS(t, l, client, "mqtt")
			if err != nil {
				t.Fatal(err)
			}
			if ws.Subprotocol() != "mqtt" {
				t.Errorf("subprotocol %q", ws.Subprotocol())
			}
			c := streamOf(ws)
			checkEcho(t, c, 300<<10)
			h := next(t, ch)
			if h.err != nil {
				t.Fatal(h.err)
			}
			if ra, ok := h.c.RemoteAddr().(*net.TCPAddr); !ok || !ra.IP.IsLoopback() {
				t.Errorf("RemoteAddr = %v, want the TCP peer", h.c.RemoteAddr())
			}
			st, ok := ConnectionState(h.c)
			if ok != secure {
				t.Errorf("ConnectionState ok = %v", ok)
			}
			if secure {
				if st.Version < tls.VersionTLS12 || len(st.VerifiedChains) == 0 {
					t.Errorf("TLS state %+v", st)
				}
				// A browser offers h2 too; the listener must pick http/1.1.
				conf := pki.clientConfig(cert)
				conf.NextProtos = []string{"h2", "http/1.1"}
				if raw := dialTLS(t, l.Addr(), conf); raw.ConnectionState().NegotiatedProtocol != "http/1.1" {
					t.Errorf("ALPN %q, want http/1.1", raw.ConnectionState().NegotiatedProtocol)
				}
				if id, ok := PeerIdentity(h.c, IdentitySAN); !ok || id != "ws.example" {
					t.Errorf("PeerIdentity = %q, %v", id, ok)
				}
			}
			if err := c.Close(); err != nil {
				t.Errorf("client close: %v", err)
			}
		})
	}
}

// The WebSocket connection is a byte stream: packets split across messages
// and frames, several packets in one frame, and a packet far above the
// library's default 32 KiB message limit all read back as the packets sent.
func TestWSByteStream(t *testing.T) {
	l := listenWSTest(t, nil, 0, WSAcceptBacklog)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	ws, _, err := dialWS(t, l, nil, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	if srv == nil {
		t.FailNow()
	}
	defer srv.Close()

	var packets [][]byte
	for _, fc := range fixture.Valid() {
		packets = append(packets, fc.Raw)
	}
	big := make([]byte, 3<<20) // a 3 MiB PUBLISH: topic "a"
	_, _ = rand.Read(big)
	packets = append(packets, publish("a", big))
	if len(packets) < 8 {
		t.Fatalf("only %d fixtures", len(packets))
	}
	stream := bytes.Join(packets, nil)

	got := make(chan error, 1)
	go func() { got <- readPackets(srv, packets) }()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	send := func(b []byte) {
		if err := ws.Write(ctx, websocket.MessageBinary, b); err != nil {
			t.Fatal(err)
		}
	}
	bigLen := len(packets[len(packets)-1])
	small := stream[:len(stream)-bigLen]
	at := 0
	cut := func(n int) []byte { b := small[at : at+n]; at += n; return b }

	send(cut(len(packets[0]) + len(packets[1]) + len(packets[2])))     // three packets in one frame
	send(cut(len(packets[3]) / 2))                                     // a packet split across messages,
	send(cut(len(packets[3]) - len(packets[3])/2 + len(packets[4])/2)) // the second ending inside the next
	w, err := ws.Writer(ctx, websocket.MessageBinary)                  // one message, a frame per Write
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && len(small)-at > 3; i++ {
		if _, err := w.Write(cut(3)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	send(small[at:])                  // the other fixtures in one message
	send(stream[len(stream)-bigLen:]) // the big PUBLISH in one message
	if err := ws.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Errorf("client close: %v", err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// publish encodes a QoS 0 PUBLISH of payload to topic.
func publish(topic string, payload []byte) []byte {
	rem := 2 + len(topic) + len(payload)
	b := []byte{0x30}
	for {
		d := byte(rem % 128)
		rem /= 128
		if rem > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if rem == 0 {
			break
		}
	}
	b = append(b, byte(len(topic)>>8), byte(len(topic)))
	b = append(b, topic...)
	return append(b, payload...)
}

// readPackets reads packets from c with the MQTT reader and compares them
// with want; after the last one the stream must end cleanly (io.EOF).
func readPackets(c net.Conn, want [][]byte) error {
	r := protocol.NewReader(c, 0)
	r.SetMaxPacketSize(0)
	for i, raw := range want {
		h, body, err := r.Next()
		if err != nil {
			return errors.Join(errors.New("packet "+itoa(i)), err)
		}
		if byte(h.Type) != raw[0]>>4 || !bytes.Equal(body, raw[len(raw)-len(body):]) || h.Remaining != len(body) {
			return errors.New("packet " + itoa(i) + " differs")
		}
	}
	if _, _, err := r.Next(); err != io.EOF {
		return errors.Join(errors.New("after the last packet"), err)
	}
	return nil
}

func itoa(i int) string {
	return string(rune('0'+i/100%10)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10))
}

// Upgrades on the wrong path or without an MQTT subprotocol are refused;
// the legacy subprotocol is accepted.
func TestWSUpgradeChecks(t *testing.T) {
	l := listenWSTest(t, nil, 0, WSAcceptBacklog)
	ch := echoServer(t, l)
	for _, protos := range [][]string{nil, {"chat"}} {
		if _, resp, err := dialWS(t, l, nil, protos...); err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("subprotocols %q: err %v, resp %v; want 400", protos, err, resp)
		}
	}
	resp, err := http.Get("http://" + l.Addr().String() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("other path: %d, want 404", resp.StatusCode)
	}
	http.DefaultClient.CloseIdleConnections()

	ws, _, err := dialWS(t, l, nil, "foo", "mqttv3.1")
	if err != nil {
		t.Fatal(err)
	}
	if ws.Subprotocol() != "mqttv3.1" {
		t.Errorf("subprotocol %q, want mqttv3.1", ws.Subprotocol())
	}
	checkEcho(t, streamOf(ws), 10)
	next(t, ch)

	// A text message fails the connection [MQTT-6.0.0-1].
	ws2, _, err := dialWS(t, l, nil, "mqtt", "mqttv3.1")
	if err != nil {
		t.Fatal(err)
	}
	if ws2.Subprotocol() != "mqtt" {
		t.Errorf("subprotocol %q, want mqtt preferred", ws2.Subprotocol())
	}
	next(t, ch)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ws2.Write(ctx, websocket.MessageText, []byte{0xc0, 0}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws2.Read(ctx); websocket.CloseStatus(err) != websocket.StatusUnsupportedData {
		t.Errorf("after a text message: %v, want close status 1003", err)
	}
}

// Past the backlog of upgraded connections nobody accepted, an upgrade is
// refused with 503; Accept frees a slot; closing the listener closes the
// unaccepted ones and leaves accepted ones open.
func TestWSBacklog(t *testing.T) {
	l := listenWSTest(t, nil, 0, 2)
	l.(*wsListener).linger = 100 * time.Millisecond // clients here never answer a close
	accept := func() net.Conn {
		t.Helper()
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	dial := func() *websocket.Conn {
		t.Helper()
		ws, _, err := dialWS(t, l, nil, "mqtt")
		if err != nil {
			t.Fatal(err)
		}
		return ws
	}
	a := dial()
	ca := accept() // a's server side: nothing else is queued
	dial()
	dial() // the backlog is full
	if _, resp, err := dialWS(t, l, nil, "mqtt"); err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade past the backlog: err %v, resp %v; want 503", err, resp)
	}
	accept()
	z := dial() // a slot is free again
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v", err)
	}
	waitClosed(t, streamOf(z), 5*time.Second) // never accepted: closed
	go func() { _, _ = io.Copy(ca, ca) }()
	checkEcho(t, streamOf(a), 100) // accepted: still open
}

// A client that connects to a WebSocket port and says nothing does not hold
// up an upgrade behind it, and is closed after the handshake timeout.
func TestWSStalledClient(t *testing.T) {
	const timeout = 400 * time.Millisecond
	pki := newPKI(t, "ca")
	for _, secure := range []bool{false, true} {
		t.Run(map[bool]string{false: "ws", true: "wss"}[secure], func(t *testing.T) {
			t.Parallel()
			var server, client *tls.Config
			if secure {
				server, client = pki.store("server", false, 0).ServerConfig(), pki.clientConfig()
			}
			l := listenWSTest(t, server, timeout, WSAcceptBacklog)
			ch := echoServer(t, l)
			start := time.Now()
			silent := dialTCP(t, l.Addr()) // on wss: stalls the TLS handshake
			half := dialTCP(t, l.Addr())
			if _, err := half.Write([]byte("GET /mqtt HTTP/1.1\r\nHost: x\r\n")); err != nil {
				t.Fatal(err)
			}
			ws, _, err := dialWS(t, l, client, "mqtt")
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d > timeout/2 {
				t.Errorf("upgrade took %v behind stalled clients", d)
			}
			checkEcho(t, streamOf(ws), 100)
			next(t, ch)
			waitClosed(t, silent, 5*time.Second)
			waitClosed(t, half, 5*time.Second)
			if d := time.Since(start); d < timeout*3/4 {
				t.Errorf("stalled clients closed after %v, before the %v timeout", d, timeout)
			}
		})
	}
}

// Deadlines work on accepted WebSocket connections and expire as timeouts
// (os.ErrDeadlineExceeded), like a socket's.
func TestWSDeadline(t *testing.T) {
	l := listenWSTest(t, nil, 0, WSAcceptBacklog)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	if _, _, err := dialWS(t, l, nil, "mqtt"); err != nil {
		t.Fatal(err)
	}
	c := <-accepted
	if c == nil {
		t.FailNow()
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Read after deadline = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("deadline took %v", d)
	}
	_ = c.SetWriteDeadline(time.Unix(1, 0))
	if _, err := c.Write([]byte{0xd0, 0}); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Write after deadline = %v, want a timeout", err)
	}
}

// Close of a WebSocket whose peer never answers the close handshake returns
// after the close timeout, not the library's 5s+5s.
func TestWSCloseBounded(t *testing.T) {
	l := listenWSTest(t, nil, 0, WSAcceptBacklog)
	l.(*wsListener).linger = 100 * time.Millisecond
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	if _, _, err := dialWS(t, l, nil, "mqtt"); err != nil { // never reads
		t.Fatal(err)
	}
	c := <-accepted
	if c == nil {
		t.FailNow()
	}
	start := time.Now()
	_ = c.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
}
