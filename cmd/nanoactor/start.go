package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nanoactor/nanoactor/actors"
	"github.com/nanoactor/nanoactor/config"
	"github.com/nanoactor/nanoactor/supervisor"
)

// shutdownTimeout bounds a graceful shutdown after SIGINT or SIGTERM.
const shutdownTimeout = 10 * time.Second

// loadConfig loads path, or the embedded default when path is empty.
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.Load(path)
}

// newLogger builds the process logger from [log].
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.SlogLevel()}
	if c.Format == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func cmdStart(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration `file` (default: the embedded default configuration)")
	pprofAddr := fs.String("pprof", "", "serve net/http/pprof on this `address` (e.g. 127.0.0.1:6060); off by default")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "nanoactor start: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		fmt.Fprintf(stderr, "nanoactor: %v\n", err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	actors.Version = version
	defer startGCFloor(gcHeapFloor)()
	// Signals are caught before anything starts, so a SIGTERM during start
	// still shuts down in order.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	node, err := supervisor.Start(cfg, log)
	if err != nil {
		log.Error("start failed", "reason", err.Error())
		return 1
	}
	if *pprofAddr != "" {
		stop, err := servePprof(*pprofAddr, log)
		if err != nil {
			log.Error("pprof listener failed", "reason", err.Error())
		} else {
			defer stop()
		}
	}
	log.Info("nanoactor started", "node", cfg.Node.Name, "version", version)
	s := <-sig
	for s == syscall.SIGHUP {
		// Reload certificates without dropping connections.
		node.Reload()
		s = <-sig
	}
	signal.Stop(sig)
	log.Info("shutting down", "node", cfg.Node.Name, "signal", s.String())
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := node.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return 1
	}
	return 0
}

func cmdConfig(args []string, stdout, stderr io.Writer) int {
	const usage = "usage: nanoactor config check FILE | nanoactor config default\n"
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "default":
		stdout.Write(config.DefaultFile())
		return 0
	case "check":
		if len(args) != 2 {
			fmt.Fprint(stderr, usage)
			return 2
		}
		if _, err := config.Load(args[1]); err != nil {
			fmt.Fprintf(stderr, "%v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: ok\n", args[1])
		return 0
	}
	fmt.Fprint(stderr, usage)
	return 2
}
