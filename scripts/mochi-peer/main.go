// Command mochi-peer runs mochi-mqtt (github.com/mochi-mqtt/server/v2) as
// a peer broker for scripts/bench-peers.sh: a TCP and a TLS listener, any
// client allowed, queue and inflight limits raised so that it does not
// drop what the other brokers keep. It is its own module, so nanoactor
// does not depend on mochi-mqtt.
package main

import (
	"crypto/tls"
	"flag"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:23883", "TCP listener address")
	tlsAddr := flag.String("tls", "", "TLS listener address (with -cert and -key)")
	cert := flag.String("cert", "", "PEM server certificate")
	key := flag.String("key", "", "PEM server key")
	flag.Parse()

	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 64 * 1024 // outbound packets a client may have pending
	caps.MaximumInflight = 65535
	caps.ReceiveMaximum = 65535
	s := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		Logger:       slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		log.Fatal(err)
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: *addr})); err != nil {
		log.Fatal(err)
	}
	if *tlsAddr != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			log.Fatal(err)
		}
		conf := &tls.Config{Certificates: []tls.Certificate{pair}}
		if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tls", Address: *tlsAddr, TLSConfig: conf})); err != nil {
			log.Fatal(err)
		}
	}
	if err := s.Serve(); err != nil {
		log.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	// Close can wait on clients for long; a benchmark peer just exits.
	go func() { _ = s.Close() }()
	time.Sleep(200 * time.Millisecond)
	os.Exit(0)
}
