package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/transport"
)

// Defaults of Options fields left zero.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultWriteTimeout   = 10 * time.Second
	DefaultInflight       = 64
	DefaultReaderSize     = 16 << 10
)

// ErrClosed is returned by operations on a closed Client.
var ErrClosed = errors.New("client closed")

// ConnackError is a CONNACK that refused the connection. It unwraps to the
// reason code, so errors.Is(err, protocol.ReasonNotAuthorized) works.
type ConnackError struct {
	Reason protocol.ReasonCode // v5 reason; 3.1.1 return codes are mapped (see protocol.Connack)
	Code   byte                // the byte on the wire: the v5 reason, or the 3.1.1 return code
}

func (e *ConnackError) Error() string {
	return fmt.Sprintf("connection refused: %s (0x%02x)", e.Reason, e.Code)
}

func (e *ConnackError) Unwrap() error { return e.Reason }

// Message is an application message received from the server. Topic and
// Payload are copies owned by the receiver.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	Dup     bool
	Props   protocol.Properties // v5 properties; byte fields are copies
}

// Options configure Dial. The zero value of each field is documented.
type Options struct {
	URL            string           // broker URL, see ParseURL; required
	TLS            *tls.Config      // for mqtts, wss and quic; nil: system roots
	Version        protocol.Version // 3, 4 or 5; 0: protocol.Version311
	ClientID       string           // "" lets the server assign one (v5, or 3.1.1 with CleanStart)
	Username       *string          // nil: no user name
	Password       *string          // nil: no password
	KeepAlive      time.Duration    // PINGREQ period; 0 disables keep alive (rounded to seconds)
	CleanStart     bool             // Clean Start (v5) / Clean Session (3.1.x)
	SessionExpiry  uint32           // v5 Session Expiry Interval in seconds; 0 omits it
	Inflight       int              // outgoing QoS 1/2 window (capped by the server's Receive Maximum), also sent as our v5 Receive Maximum; 0: DefaultInflight
	ConnectTimeout time.Duration    // dial + CONNACK; 0: DefaultConnectTimeout
	WriteTimeout   time.Duration    // per write; 0: DefaultWriteTimeout

	// OnMessage is called on the reader goroutine for every application
	// message, before it is acknowledged, in the order received. It must
	// not block for long and must not wait for a QoS 1/2 Publish of the
	// same Client to complete (its acknowledgement is read by the same
	// goroutine). nil drops messages after acknowledging them.
	OnMessage func(Message)

	// Debug, if set, is called with a one-line description of every packet
	// sent ("->") and received ("<-"), from the writing or reading goroutine.
	Debug func(dir, what string)
}

// pending is an outgoing request waiting for its answer.
type pending struct {
	done   func(protocol.Packet, error) // called once, on the reader goroutine or by fail
	window bool                         // holds a slot of the inflight window
	qos2   bool                         // a QoS 2 publish: PUBREC seen means send PUBREL
}

// Client is one MQTT connection. Its methods are safe for concurrent use.
type Client struct {
	opts    Options
	v       protocol.Version
	nc      net.Conn
	r       *protocol.Reader
	Connack protocol.Connack // the server's CONNACK (byte fields copied)

	wmu  sync.Mutex // the writer path: one write at a time
	wbuf []byte     // guarded by wmu

	window chan struct{} // inflight slots, one token per outgoing QoS 1/2 publish

	mu      sync.Mutex
	ids     map[uint16]*pending // guarded by mu
	nextID  uint16              // guarded by mu
	err     error               // why the connection closed; guarded by mu
	pingOut bool                // a PINGREQ awaits its PINGRESP; guarded by mu

	qos2In map[uint16]bool // QoS 2 ids received, PUBREL not yet; reader goroutine only

	closeOnce sync.Once
	done      chan struct{} // closed when the reader goroutine has exited
	stop      chan struct{} // closed by close: ends the keepalive goroutine
}

// Dial opens a connection to opts.URL, sends CONNECT and waits for CONNACK.
// It returns a *ConnackError when the server refuses the connection. ctx
// bounds the dial and the handshake (as does opts.ConnectTimeout).
func Dial(ctx context.Context, opts Options) (*Client, error) {
	if opts.Version == 0 {
		opts.Version = protocol.Version311
	}
	if opts.Version < protocol.Version31 || opts.Version > protocol.Version5 {
		return nil, fmt.Errorf("dial: unsupported protocol version %d", opts.Version)
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.Inflight <= 0 {
		opts.Inflight = DefaultInflight
	}
	ep, err := ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	nc, err := dialTransport(ctx, ep, opts.TLS)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", ep, err)
	}
	c := &Client{
		opts: opts, v: opts.Version, nc: nc,
		r:      protocol.NewReader(nc, DefaultReaderSize),
		ids:    map[uint16]*pending{},
		qos2In: map[uint16]bool{},
		done:   make(chan struct{}),
		stop:   make(chan struct{}),
	}
	if err := c.handshake(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	win := opts.Inflight
	if c.v == protocol.Version5 && c.Connack.Props.Has(protocol.PropReceiveMaximum) && int(c.Connack.Props.ReceiveMaximum) < win {
		win = int(c.Connack.Props.ReceiveMaximum)
	}
	c.window = make(chan struct{}, win)
	go c.readLoop()
	if ka := c.keepAlive(); ka > 0 {
		go c.keepAliveLoop(ka)
	}
	return c, nil
}

func dialTransport(ctx context.Context, ep Endpoint, tc *tls.Config) (net.Conn, error) {
	switch ep.Scheme {
	case "mqtt":
		var d net.Dialer
		return d.DialContext(ctx, "tcp", ep.Host)
	case "mqtts":
		d := tls.Dialer{Config: tc}
		return d.DialContext(ctx, "tcp", ep.Host)
	case "quic":
		return transport.DialQUIC(ctx, ep.Host, tc)
	case "ws", "wss":
		opts := &websocket.DialOptions{Subprotocols: []string{"mqtt"}}
		if ep.Scheme == "wss" && tc != nil {
			opts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		}
		path := ep.Path
		if path == "" {
			path = "/mqtt"
		}
		wc, _, err := websocket.Dial(ctx, ep.Scheme+"://"+ep.Host+path, opts)
		if err != nil {
			return nil, err
		}
		wc.SetReadLimit(-1)
		return websocket.NetConn(context.Background(), wc, websocket.MessageBinary), nil
	}
	return nil, fmt.Errorf("unsupported scheme %q", ep.Scheme)
}

func (c *Client) handshake(ctx context.Context) error {
	cp := &protocol.Connect{
		Level: c.v, CleanStart: c.opts.CleanStart, ClientID: []byte(c.opts.ClientID),
		KeepAlive: uint16(c.opts.KeepAlive / time.Second),
	}
	if c.opts.Username != nil {
		cp.UsernameFlag, cp.Username = true, []byte(*c.opts.Username)
	}
	if c.opts.Password != nil {
		cp.PasswordFlag, cp.Password = true, []byte(*c.opts.Password)
	}
	if c.v == protocol.Version5 {
		if c.opts.SessionExpiry > 0 {
			cp.Props.SessionExpiry = c.opts.SessionExpiry
			cp.Props.Set(protocol.PropSessionExpiry)
		}
		cp.Props.ReceiveMaximum = uint16(min(c.opts.Inflight, 65535))
		cp.Props.Set(protocol.PropReceiveMaximum)
	}
	if err := c.write(cp); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetReadDeadline(dl)
	}
	h, body, err := c.r.Next()
	c.nc.SetReadDeadline(time.Time{})
	if err != nil {
		return fmt.Errorf("connect: waiting for connack: %w", err)
	}
	if h.Type != protocol.TypeConnack {
		return fmt.Errorf("connect: expected connack, got %v", h.Type)
	}
	if err := c.Connack.Decode(h, body, c.v); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	c.debug("<-", fmt.Sprintf("CONNACK session_present=%t reason=%s", c.Connack.SessionPresent, c.Connack.Reason))
	if c.Connack.Reason != protocol.ReasonSuccess {
		code := byte(c.Connack.Reason)
		if c.v < protocol.Version5 && len(body) > 1 {
			code = body[1]
		}
		return &ConnackError{Reason: c.Connack.Reason, Code: code}
	}
	// Detach the CONNACK from the reader's buffer.
	c.Connack.Props = cloneProps(c.Connack.Props)
	return nil
}

// keepAlive is the period at which to ping: the server's Server Keep Alive
// in v5 when it sent one, else ours.
func (c *Client) keepAlive() time.Duration {
	if c.v == protocol.Version5 && c.Connack.Props.Has(protocol.PropServerKeepAlive) {
		return time.Duration(c.Connack.Props.ServerKeepAlive) * time.Second
	}
	return time.Duration(c.opts.KeepAlive/time.Second) * time.Second
}

// keepAliveLoop sends a PINGREQ every period and closes the connection when
// the previous one got no PINGRESP within a period. It exits on close.
func (c *Client) keepAliveLoop(period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		late := c.pingOut
		c.pingOut = true
		c.mu.Unlock()
		if late {
			c.close(errors.New("keepalive: no pingresp from server"))
			return
		}
		if err := c.write(&protocol.Pingreq{}); err != nil {
			c.close(err)
			return
		}
	}
}

// write encodes p and writes it with a write deadline. It is the single
// writer path of the connection; it does not hold c.mu.
func (c *Client) write(p protocol.Packet) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	b, err := p.Append(c.wbuf[:0], c.v)
	if err != nil {
		return fmt.Errorf("encode %v: %w", p.Type(), err)
	}
	c.wbuf = b
	if c.opts.Debug != nil {
		c.debug("->", describe(p))
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	if _, err := c.nc.Write(b); err != nil {
		return fmt.Errorf("write %v: %w", p.Type(), err)
	}
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil // do not keep a large payload's buffer
	}
	return nil
}

func (c *Client) debug(dir, what string) {
	if c.opts.Debug != nil {
		c.opts.Debug(dir, what)
	}
}

// Version is the protocol version of the connection.
func (c *Client) Version() protocol.Version { return c.v }

// Done is closed when the connection has closed (see Err).
func (c *Client) Done() <-chan struct{} { return c.done }

// Err is why the connection closed, nil while it is open.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// close records err as the reason (the first one wins), closes the socket
// and fails every pending request. It is idempotent.
func (c *Client) close(err error) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.err = err
		ids := c.ids
		c.ids = map[uint16]*pending{}
		c.mu.Unlock()
		close(c.stop)
		c.nc.Close()
		for _, p := range ids {
			if p.window {
				<-c.window
			}
			p.done(nil, err)
		}
	})
}

// Close closes the connection without DISCONNECT (a v5 server publishes the
// will, if any) and waits for the reader goroutine to exit.
func (c *Client) Close() error {
	c.close(ErrClosed)
	<-c.done
	return nil
}

// Disconnect sends DISCONNECT (Normal disconnection), closes the connection
// and waits for the reader goroutine to exit.
func (c *Client) Disconnect() error {
	err := c.write(&protocol.Disconnect{})
	c.close(ErrClosed)
	<-c.done
	return err
}
