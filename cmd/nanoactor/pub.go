package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/nanoactor/nanoactor/client"
	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/transport"
)

// Exit codes of the client tools.
const (
	exitOK    = 0
	exitFail  = 1 // connection, protocol or I/O failure
	exitUsage = 2 // bad flags
)

// connFlags are the connection flags shared by pub, sub and bench, spelled
// as mosquitto_pub / mosquitto_sub spell them.
type connFlags struct {
	host, port, url   string
	id, user, pass    string
	userSet, passSet  bool
	keepalive         int
	version           string
	cafile, cert, key string
	insecure          bool
	debug             bool
	noClean           bool
	sessionExpiry     uint
	qos               int
}

// register adds the flags of pub and sub.
func (f *connFlags) register(fs *flag.FlagSet) {
	f.registerTransport(fs)
	fs.StringVar(&f.id, "i", "", "client id (default: a generated one)")
	fs.BoolVar(&f.debug, "d", false, "print every packet sent and received to stderr")
	fs.BoolVar(&f.noClean, "c", false, "persistent session: clean session / clean start off (needs -i)")
	fs.UintVar(&f.sessionExpiry, "x", 0, "v5 session expiry interval in seconds")
}

// registerTransport adds the flags that choose the broker, the transport,
// the credentials, the version and the QoS (the flags bench shares).
func (f *connFlags) registerTransport(fs *flag.FlagSet) {
	fs.StringVar(&f.host, "h", "localhost", "broker host")
	fs.StringVar(&f.port, "p", "", "broker port (default 1883, 8883 with --cafile/--cert/--insecure)")
	fs.StringVar(&f.url, "L", "", "broker URL: mqtt://, mqtts://, tls://, ws://, wss://, quic:// host[:port][/path]")
	fs.Func("u", "user name", func(s string) error { f.user, f.userSet = s, true; return nil })
	fs.Func("P", "password", func(s string) error { f.pass, f.passSet = s, true; return nil })
	fs.IntVar(&f.keepalive, "k", 60, "keep alive in seconds (0 disables)")
	fs.StringVar(&f.version, "V", "311", "protocol version: 31, 311 or 5 (also mqttv31, mqttv311, mqttv5)")
	fs.StringVar(&f.cafile, "cafile", "", "PEM file of trusted CA certificates (enables TLS)")
	fs.StringVar(&f.cert, "cert", "", "PEM client certificate (with --key; enables TLS)")
	fs.StringVar(&f.key, "key", "", "PEM client private key")
	fs.BoolVar(&f.insecure, "insecure", false, "do not verify the server certificate (enables TLS)")
	fs.IntVar(&f.qos, "q", 0, "quality of service: 0, 1 or 2")
}

// parseVersion maps a -V value to a protocol level.
func parseVersion(s string) (protocol.Version, error) {
	switch strings.ToLower(strings.TrimPrefix(strings.ToLower(s), "mqttv")) {
	case "31", "3":
		return protocol.Version31, nil
	case "311", "4":
		return protocol.Version311, nil
	case "5", "50":
		return protocol.Version5, nil
	}
	return 0, fmt.Errorf("unknown protocol version %q (want 31, 311 or 5)", s)
}

// options builds client options from the flags. It returns the URL path
// (the topic of "-L mqtt://host/topic", for pub) separately.
func (f *connFlags) options(stderr io.Writer) (client.Options, string, error) {
	var o client.Options
	v, err := parseVersion(f.version)
	if err != nil {
		return o, "", err
	}
	if f.qos < 0 || f.qos > 2 {
		return o, "", fmt.Errorf("-q %d: qos must be 0, 1 or 2", f.qos)
	}
	if f.keepalive < 0 || f.keepalive > 65535 {
		return o, "", fmt.Errorf("-k %d: keepalive must be 0..65535", f.keepalive)
	}
	tlsOn := f.cafile != "" || f.cert != "" || f.insecure
	var path string
	if f.url != "" {
		ep, err := client.ParseURL(f.url)
		if err != nil {
			return o, "", err
		}
		o.URL = ep.Scheme + "://" + ep.Host
		switch ep.Scheme {
		case "ws", "wss":
			o.URL += ep.Path // the path is the WebSocket endpoint
		default:
			path = strings.TrimPrefix(ep.Path, "/")
		}
		tlsOn = tlsOn || ep.Scheme == "mqtts" || ep.Scheme == "wss" || ep.Scheme == "quic"
	} else {
		scheme, port := "mqtt", "1883"
		if tlsOn {
			scheme, port = "mqtts", "8883"
		}
		if f.port != "" {
			port = f.port
		}
		o.URL = scheme + "://" + net.JoinHostPort(f.host, port)
	}
	if tlsOn {
		if (f.cert == "") != (f.key == "") {
			return o, "", errors.New("--cert and --key go together")
		}
		tc, err := transport.ClientTLSConfig(transport.ClientTLSFiles{CAFile: f.cafile, CertFile: f.cert, KeyFile: f.key, Insecure: f.insecure})
		if err != nil {
			return o, "", fmt.Errorf("--cafile/--cert/--key: %w", err)
		}
		o.TLS = tc
	}
	o.Version = v
	o.ClientID = f.id
	if o.ClientID == "" {
		o.ClientID = fmt.Sprintf("nanoactor-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	}
	if f.noClean && f.id == "" {
		return o, "", errors.New("-c needs a client id (-i)")
	}
	o.CleanStart = !f.noClean
	o.SessionExpiry = uint32(f.sessionExpiry)
	if f.userSet {
		o.Username = &f.user
	}
	if f.passSet {
		o.Password = &f.pass
	}
	o.KeepAlive = time.Duration(f.keepalive) * time.Second
	if f.debug {
		o.Debug = func(dir, what string) { fmt.Fprintf(stderr, "%s %s\n", dir, what) }
	}
	return o, path, nil
}

// newFlagSet returns a flag set that reports errors to stderr and prints
// usage text on --help only (-h is the host, as in mosquitto).
// parseFlags parses args into fs and handles what every tool handles the
// same way: --help (usage on stdout, exit 0), a bad flag (exit 2) and, when
// noArgs, a stray argument (exit 2). done reports that the command should
// return code now.
func parseFlags(fs *flag.FlagSet, args []string, help *bool, name string, noArgs bool, stdout, stderr io.Writer) (code int, done bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, true
		}
		return exitUsage, true
	}
	if *help {
		fs.SetOutput(stdout)
		fs.Usage()
		return exitOK, true
	}
	if noArgs && fs.NArg() > 0 {
		fmt.Fprintf(stderr, "nanoactor %s: unexpected argument %q\n", name, fs.Arg(0))
		return exitUsage, true
	}
	return 0, false
}

func newFlagSet(name, usage string, stderr io.Writer) (*flag.FlagSet, *bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	help := fs.Bool("help", false, "print this help")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	return fs, help
}

const pubUsage = `usage: nanoactor pub [flags] -t topic (-m message | -f file | -n | -s | -l)

Publish one message (or one per stdin line with -l) and exit. With
-L mqtt://host:port/topic (also mqtts, tls, quic) the URL path is the topic;
for ws:// and wss:// the path is the WebSocket endpoint (default /mqtt).

`

// cmdPub implements "nanoactor pub".
func cmdPub(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs, help := newFlagSet("pub", pubUsage, stderr)
	var cf connFlags
	cf.register(fs)
	topic := fs.String("t", "", "topic to publish to (or the path of -L)")
	msg := fs.String("m", "", "message payload")
	file := fs.String("f", "", "send the contents of a file as the message")
	null := fs.Bool("n", false, "send a null (zero length) message")
	stdinAll := fs.Bool("s", false, "send all of stdin as one message")
	lines := fs.Bool("l", false, "send each line of stdin as a message")
	retain := fs.Bool("r", false, "retain the message")
	repeat := fs.Int("repeat", 1, "publish the message this many times")
	if code, done := parseFlags(fs, args, help, "pub", true, stdout, stderr); done {
		return code
	}
	msgSet := false
	fs.Visit(func(f *flag.Flag) { msgSet = msgSet || f.Name == "m" })
	opts, urlTopic, err := cf.options(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "nanoactor pub: %v\n", err)
		return exitUsage
	}
	if *topic == "" {
		*topic = urlTopic
	}
	if *topic == "" {
		fmt.Fprintln(stderr, "nanoactor pub: no topic: use -t or -L mqtt://host:port/topic")
		return exitUsage
	}
	sources := 0
	for _, b := range []bool{msgSet, *file != "", *null, *stdinAll, *lines} {
		if b {
			sources++
		}
	}
	if sources != 1 {
		fmt.Fprintln(stderr, "nanoactor pub: give exactly one of -m, -f, -n, -s, -l")
		return exitUsage
	}
	var payload []byte
	switch {
	case msgSet:
		payload = []byte(*msg)
	case *file != "":
		if payload, err = os.ReadFile(*file); err != nil {
			fmt.Fprintf(stderr, "nanoactor pub: %v\n", err)
			return exitFail
		}
	case *stdinAll:
		if payload, err = io.ReadAll(stdin); err != nil {
			fmt.Fprintf(stderr, "nanoactor pub: read stdin: %v\n", err)
			return exitFail
		}
	}
	ctx := context.Background()
	c, err := client.Dial(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "nanoactor pub: %v\n", err)
		return exitFail
	}
	defer c.Close()
	send := func(p []byte) error {
		return c.Publish(ctx, &protocol.Publish{Topic: []byte(*topic), Payload: p, QoS: byte(cf.qos), Retain: *retain})
	}
	if *lines {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64<<10), protocol.DefaultMaxPacketSize)
		for sc.Scan() {
			if err := send(sc.Bytes()); err != nil {
				fmt.Fprintf(stderr, "nanoactor pub: %v\n", err)
				return exitFail
			}
		}
		if err := sc.Err(); err != nil {
			fmt.Fprintf(stderr, "nanoactor pub: read stdin: %v\n", err)
			return exitFail
		}
	} else {
		for range max(*repeat, 1) {
			if err := send(payload); err != nil {
				fmt.Fprintf(stderr, "nanoactor pub: %v\n", err)
				return exitFail
			}
		}
	}
	if err := c.Disconnect(); err != nil {
		fmt.Fprintf(stderr, "nanoactor pub: disconnect: %v\n", err)
		return exitFail
	}
	return exitOK
}
