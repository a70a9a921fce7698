package integration

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nanoactor/nanoactor/protocol"
)

// Stream clients: a QoS 2 publisher and a QoS 2 subscriber that keep their
// MQTT session state across reconnects (as a real client library does),
// over any transport (a dial function), used to prove exactly-once,
// in-order delivery while pipes fail.

// dialFunc opens a new byte stream to the broker.
type dialFunc func() (net.Conn, error)

// streamConn is one MQTT v5 connection of a stream client.
type streamConn struct {
	nc net.Conn
	r  *protocol.Reader
	mu sync.Mutex // serializes writes
}

func streamConnect(dial dialFunc, id string, clean bool) (*streamConn, *protocol.Connack, error) {
	nc, err := dial()
	if err != nil {
		return nil, nil, err
	}
	c := &streamConn{nc: nc, r: protocol.NewReader(nc, 64<<10)}
	cp := &protocol.Connect{Level: protocol.Version5, ClientID: []byte(id), CleanStart: clean, KeepAlive: 30}
	cp.Props.SessionExpiry = 300
	cp.Props.Set(protocol.PropSessionExpiry)
	if err := c.send(cp); err != nil {
		nc.Close()
		return nil, nil, err
	}
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := c.next()
	nc.SetReadDeadline(time.Time{})
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	ack, ok := p.(*protocol.Connack)
	if !ok || ack.Reason != 0 {
		nc.Close()
		return nil, nil, fmt.Errorf("connect %s: got %v", id, p)
	}
	return c, ack, nil
}

func (c *streamConn) send(p protocol.Packet) error {
	b, err := p.Append(nil, protocol.Version5)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err = c.nc.Write(b)
	return err
}

func (c *streamConn) next() (protocol.Packet, error) {
	h, body, err := c.r.Next()
	if err != nil {
		return nil, err
	}
	return protocol.Decode(h, append([]byte(nil), body...), protocol.Version5)
}

// streamSub is a QoS 2 subscriber with a persistent session. It records
// every application message (the first copy of each packet id between
// PUBLISH and PUBREL, which is what a conforming client delivers), and
// reconnects with Clean Start 0 whenever its connection fails.
type streamSub struct {
	dial     dialFunc
	id       string
	filter   string
	mu       sync.Mutex
	got      []uint64 // sequence numbers delivered, in order
	lastAt   time.Time
	maxGap   time.Duration
	reconns  atomic.Int64
	inflight map[uint16]bool // QoS 2 ids received, PUBREL not yet seen (client session state)
	stop     chan struct{}
	done     chan struct{}
}

func startStreamSub(t *testing.T, dial dialFunc, id, filter string) *streamSub {
	t.Helper()
	s := &streamSub{dial: dial, id: id, filter: filter, inflight: map[uint16]bool{},
		stop: make(chan struct{}), done: make(chan struct{})}
	c, _, err := streamConnect(dial, id, true)
	if err != nil {
		t.Fatalf("subscriber connect: %v", err)
	}
	// Subscribe on the first connection; the session keeps it.
	if err := c.send(&protocol.Subscribe{PacketID: 1, Filters: []protocol.Subscription{{Filter: []byte(filter), QoS: 2}}}); err != nil {
		t.Fatal(err)
	}
	p, err := c.next()
	if sa, ok := p.(*protocol.Suback); err != nil || !ok || sa.Reasons[0] != 2 {
		t.Fatalf("suback: %v %v", p, err)
	}
	c.nc.Close()
	go s.run()
	t.Cleanup(s.close)
	return s
}

func (s *streamSub) close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

func (s *streamSub) stopped() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

func (s *streamSub) run() {
	defer close(s.done)
	for !s.stopped() {
		c, _, err := streamConnect(s.dial, s.id, false)
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		s.serve(c)
		c.nc.Close()
		if !s.stopped() {
			s.reconns.Add(1)
		}
	}
}

func (s *streamSub) serve(c *streamConn) {
	go func() { <-s.stop; c.nc.Close() }()
	for {
		p, err := c.next()
		if err != nil {
			return
		}
		switch p := p.(type) {
		case *protocol.Publish:
			if p.QoS != 2 {
				continue
			}
			s.mu.Lock()
			if !s.inflight[p.PacketID] {
				s.inflight[p.PacketID] = true
				s.record(binary.BigEndian.Uint64(p.Payload))
			}
			s.mu.Unlock()
			if c.send(&protocol.Ack{Kind: protocol.TypePubrec, PacketID: p.PacketID}) != nil {
				return
			}
		case *protocol.Ack:
			if p.Kind == protocol.TypePubrel {
				s.mu.Lock()
				delete(s.inflight, p.PacketID)
				s.mu.Unlock()
				if c.send(&protocol.Ack{Kind: protocol.TypePubcomp, PacketID: p.PacketID}) != nil {
					return
				}
			}
		case *protocol.Disconnect:
			return
		}
	}
}

func (s *streamSub) record(seq uint64) {
	now := time.Now()
	if !s.lastAt.IsZero() && now.Sub(s.lastAt) > s.maxGap {
		s.maxGap = now.Sub(s.lastAt)
	}
	s.lastAt = now
	s.got = append(s.got, seq)
}

func (s *streamSub) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// check verifies that exactly 0..n-1 arrived, each once, in order.
func (s *streamSub) check(t *testing.T, n int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) != n {
		t.Errorf("subscriber got %d messages, want %d", len(s.got), n)
	}
	for i, v := range s.got {
		if v != uint64(i) {
			t.Fatalf("message %d is seq %d: lost, duplicated or out of order (window %v)", i, v, s.got[max(0, i-3):min(len(s.got), i+3)])
		}
	}
}

// streamPub publishes n QoS 2 messages with 8-byte sequence payloads at
// about rate per second, keeping at most window in flight, and resends
// (DUP, or PUBREL) after reconnecting, as a client library does.
type streamPub struct {
	maxPause time.Duration // the longest time without a completed exchange
}

func runStreamPub(t *testing.T, dial dialFunc, id, topic string, n, rate int) *streamPub {
	t.Helper()
	return runStreamPubWindow(t, dial, id, topic, n, rate, 50)
}

// runStreamPubWindow is runStreamPub with window messages in flight.
func runStreamPubWindow(t *testing.T, dial dialFunc, id, topic string, n, rate, window int) *streamPub {
	t.Helper()
	res := &streamPub{}
	c, _, err := streamConnect(dial, id, true)
	if err != nil {
		t.Fatalf("publisher connect: %v", err)
	}
	defer func() { c.nc.Close() }()
	type state struct {
		pub *protocol.Publish
		rel bool
	}
	pending := map[uint16]*state{}
	order := []uint16{}
	var nextID uint16
	acks := make(chan protocol.Packet, 256)
	readErr := make(chan error, 1)
	reader := func(c *streamConn) {
		for {
			p, err := c.next()
			if err != nil {
				readErr <- err
				return
			}
			acks <- p
		}
	}
	go reader(c)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	last := time.Now()
	sent := 0
	deadline := time.Now().Add(time.Duration(n/rate+30) * time.Second)
	for sent < n || len(pending) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("publisher: %d of %d sent, %d pending at deadline", sent, n, len(pending))
		}
		var tick <-chan time.Time
		if sent < n && len(pending) < window {
			due := start.Add(time.Duration(sent) * interval)
			if d := time.Until(due); d > 0 {
				tick = time.After(d)
			} else {
				ch := make(chan time.Time, 1)
				ch <- time.Now()
				tick = ch
			}
		}
		select {
		case <-tick:
			nextID++
			if nextID == 0 {
				nextID = 1
			}
			payload := make([]byte, 8)
			binary.BigEndian.PutUint64(payload, uint64(sent))
			p := &protocol.Publish{Topic: []byte(topic), Payload: payload, QoS: 2, PacketID: nextID}
			pending[nextID] = &state{pub: p}
			order = append(order, nextID)
			sent++
			if err := c.send(p); err != nil {
				t.Logf("publisher write: %v", err)
			}
		case p := <-acks:
			a, ok := p.(*protocol.Ack)
			if !ok {
				continue
			}
			st := pending[a.PacketID]
			switch {
			case st == nil:
			case a.Kind == protocol.TypePubrec && !st.rel:
				st.rel = true
				c.send(&protocol.Ack{Kind: protocol.TypePubrel, PacketID: a.PacketID})
			case a.Kind == protocol.TypePubcomp && st.rel:
				delete(pending, a.PacketID)
				if d := time.Since(last); d > res.maxPause {
					res.maxPause = d
				}
				last = time.Now()
			}
		case err := <-readErr:
			t.Fatalf("publisher connection failed: %v", err)
		}
		// keep order compact
		for len(order) > 0 && pending[order[0]] == nil {
			order = order[1:]
		}
	}
	return res
}

// pingPong measures the longest gap an unrelated QoS 1 client sees between
// its own round trips while something else goes on.
type pingPong struct {
	maxGap time.Duration
	n      int
	err    error
	stop   chan struct{}
	done   chan struct{}
}

func startPingPong(t *testing.T, dial dialFunc, id string) *pingPong {
	t.Helper()
	pp := &pingPong{stop: make(chan struct{}), done: make(chan struct{})}
	c, _, err := streamConnect(dial, id, true)
	if err != nil {
		t.Fatal(err)
	}
	topic := "pp/" + id
	if err := c.send(&protocol.Subscribe{PacketID: 1, Filters: []protocol.Subscription{{Filter: []byte(topic), QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.next(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(pp.done)
		defer c.nc.Close()
		last := time.Now()
		var id uint16
		for {
			select {
			case <-pp.stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			id = id%60000 + 1
			if err := c.send(&protocol.Publish{Topic: []byte(topic), Payload: []byte("p"), QoS: 1, PacketID: id}); err != nil {
				pp.err = err
				return
			}
			gotPub, gotAck := false, false
			c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			for !gotPub || !gotAck {
				p, err := c.next()
				if err != nil {
					pp.err = err
					return
				}
				switch p := p.(type) {
				case *protocol.Publish:
					gotPub = true
					c.send(&protocol.Ack{Kind: protocol.TypePuback, PacketID: p.PacketID})
				case *protocol.Ack:
					gotAck = gotAck || p.Kind == protocol.TypePuback
				}
			}
			if d := time.Since(last); d > pp.maxGap {
				pp.maxGap = d
			}
			last = time.Now()
			pp.n++
		}
	}()
	return pp
}

func (pp *pingPong) finish(t *testing.T) {
	t.Helper()
	close(pp.stop)
	<-pp.done
	if pp.err != nil && !errors.Is(pp.err, net.ErrClosed) {
		t.Errorf("unrelated client failed: %v", pp.err)
	}
	if pp.n == 0 {
		t.Error("unrelated client made no round trip")
	}
}

func tcpDial(addr string) dialFunc {
	return func() (net.Conn, error) { return net.DialTimeout("tcp", addr, 5*time.Second) }
}
