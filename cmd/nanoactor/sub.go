package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nanoactor/nanoactor/client"
	"github.com/nanoactor/nanoactor/protocol"
)

// exitTimeout is the exit code of "sub -W" when the time is up, as
// mosquitto_sub uses (ETIMEDOUT).
const exitTimeout = 27

// subQueue bounds the messages received and not yet printed; when it is
// full the reader goroutine waits, which stops reading from the socket.
const subQueue = 1024

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

const subUsage = `usage: nanoactor sub [flags] -t filter [-t filter ...]

Subscribe and print each message as it arrives: its payload, or "topic
payload" with -v, or as -F formats it. Exits after -C messages, after -W
seconds (exit code 27), or on SIGINT/SIGTERM.

-F format: %t topic, %p payload, %x payload in hex, %l payload length,
%q qos, %r retain flag, %U unix time, %I ISO 8601 time, %P v5 properties,
%% a percent sign; \n, \t and \\ escapes.

`

// cmdSub implements "nanoactor sub".
func cmdSub(args []string, stdout, stderr io.Writer) int {
	fs, help := newFlagSet("sub", subUsage, stderr)
	var cf connFlags
	cf.register(fs)
	var topics stringList
	fs.Var(&topics, "t", "topic filter to subscribe to (repeatable)")
	count := fs.Int("C", 0, "exit after this many messages (0: no limit)")
	wait := fs.Int("W", 0, "exit after this many seconds (0: no limit)")
	verbose := fs.Bool("v", false, "print \"topic payload\"")
	format := fs.String("F", "", "output format (see above)")
	props := fs.Bool("props", false, "print v5 properties after each message")
	noEOL := fs.Bool("N", false, "do not print a newline after each message")
	noRetained := fs.Bool("R", false, "do not print stale retained messages")
	if code, done := parseFlags(fs, args, help, "sub", true, stdout, stderr); done {
		return code
	}
	opts, urlTopic, err := cf.options(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "nanoactor sub: %v\n", err)
		return exitUsage
	}
	if len(topics) == 0 && urlTopic != "" {
		topics = append(topics, urlTopic)
	}
	if len(topics) == 0 {
		fmt.Fprintln(stderr, "nanoactor sub: no topic: use -t (repeatable)")
		return exitUsage
	}
	if *count < 0 || *wait < 0 {
		fmt.Fprintln(stderr, "nanoactor sub: -C and -W must not be negative")
		return exitUsage
	}
	sigCtx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// cancel releases a reader goroutine waiting on a full queue, so that
	// Disconnect (which waits for that goroutine) cannot block.
	ctx, cancel := context.WithCancel(sigCtx)
	defer cancel()
	var timeout <-chan time.Time
	if *wait > 0 {
		t := time.NewTimer(time.Duration(*wait) * time.Second)
		defer t.Stop()
		timeout = t.C
	}
	msgs := make(chan client.Message, subQueue)
	opts.OnMessage = func(m client.Message) {
		select {
		case msgs <- m:
		case <-ctx.Done():
		}
	}
	c, err := client.Dial(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "nanoactor sub: %v\n", err)
		return exitFail
	}
	defer c.Close()
	subs := make([]protocol.Subscription, len(topics))
	for i, t := range topics {
		subs[i] = protocol.Subscription{Filter: []byte(t), QoS: byte(cf.qos)}
	}
	rc, err := c.Subscribe(ctx, subs...)
	if err != nil {
		fmt.Fprintf(stderr, "nanoactor sub: %v\n", err)
		return exitFail
	}
	for i, r := range rc {
		if r.IsError() && i < len(topics) {
			fmt.Fprintf(stderr, "nanoactor sub: subscription to %q refused: %s\n", topics[i], r)
			return exitFail
		}
	}
	eol := "\n"
	if *noEOL {
		eol = ""
	}
	n := 0
	for {
		select {
		case m := <-msgs:
			if *noRetained && m.Retain {
				continue
			}
			var line string
			switch {
			case *format != "":
				line = formatMessage(*format, m)
			case *verbose:
				line = m.Topic + " " + string(m.Payload) + eol
			default:
				line = string(m.Payload) + eol
			}
			if *props && !m.Props.Empty() {
				line += formatProps(&m.Props) + "\n"
			}
			io.WriteString(stdout, line)
			n++
			if *count > 0 && n >= *count {
				cancel()
				c.Disconnect()
				return exitOK
			}
		case <-timeout:
			fmt.Fprintf(stderr, "nanoactor sub: timed out after %ds (%d messages)\n", *wait, n)
			cancel()
			c.Disconnect()
			return exitTimeout
		case <-c.Done():
			fmt.Fprintf(stderr, "nanoactor sub: connection lost: %v\n", c.Err())
			return exitFail
		case <-ctx.Done():
			c.Disconnect()
			return exitOK
		}
	}
}

// formatMessage expands a -F format for m.
func formatMessage(f string, m client.Message) string {
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		ch := f[i]
		if (ch != '%' && ch != '\\') || i+1 == len(f) {
			b.WriteByte(ch)
			continue
		}
		i++
		if ch == '\\' {
			switch f[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case '\\':
				b.WriteByte('\\')
			default:
				b.WriteByte('\\')
				b.WriteByte(f[i])
			}
			continue
		}
		switch f[i] {
		case 't':
			b.WriteString(m.Topic)
		case 'p':
			b.Write(m.Payload)
		case 'x':
			b.WriteString(hex.EncodeToString(m.Payload))
		case 'l':
			b.WriteString(strconv.Itoa(len(m.Payload)))
		case 'q':
			b.WriteString(strconv.Itoa(int(m.QoS)))
		case 'r':
			if m.Retain {
				b.WriteByte('1')
			} else {
				b.WriteByte('0')
			}
		case 'U':
			b.WriteString(strconv.FormatFloat(float64(time.Now().UnixNano())/1e9, 'f', 6, 64))
		case 'I':
			b.WriteString(time.Now().Format(time.RFC3339))
		case 'P':
			b.WriteString(formatProps(&m.Props))
		case '%':
			b.WriteByte('%')
		default:
			b.WriteByte('%')
			b.WriteByte(f[i])
		}
	}
	return b.String()
}

// formatProps renders the v5 properties of a PUBLISH on one line.
func formatProps(p *protocol.Properties) string {
	var parts []string
	add := func(k string, v any) { parts = append(parts, fmt.Sprintf("%s=%v", k, v)) }
	if p.Has(protocol.PropPayloadFormat) {
		add("payload-format", p.PayloadFormat)
	}
	if p.Has(protocol.PropMessageExpiry) {
		add("message-expiry", p.MessageExpiry)
	}
	if p.Has(protocol.PropContentType) {
		add("content-type", string(p.ContentType))
	}
	if p.Has(protocol.PropResponseTopic) {
		add("response-topic", string(p.ResponseTopic))
	}
	if p.Has(protocol.PropCorrelationData) {
		add("correlation-data", hex.EncodeToString(p.CorrelationData))
	}
	for _, id := range p.SubscriptionIDs {
		add("subscription-id", id)
	}
	for _, u := range p.User {
		add("user:"+string(u.Key), string(u.Value))
	}
	return "properties: " + strings.Join(parts, " ")
}
