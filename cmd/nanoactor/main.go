// Command nanoactor is the nanoactor MQTT broker and its tools.
//
//	nanoactor start [--config FILE]   run the broker
//	nanoactor config check FILE       validate a configuration file
//	nanoactor config default          print the default configuration
//	nanoactor pub | sub [flags]       mosquitto_pub / mosquitto_sub style clients
//	nanoactor bench pub|sub|conn|pubsub [flags]   load generator
//	nanoactor version                 print the version
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: nanoactor <command> [arguments]

commands:
  start [--config FILE]   run the broker (embedded default configuration without --config)
  config check FILE       validate a configuration file and exit
  config default          print the default configuration with every key documented
  version                 print the version
  pub [flags]             publish a message (mosquitto_pub flags; --help)
  sub [flags]             subscribe and print messages (mosquitto_sub flags; --help)
  bench pub|sub|conn|pubsub [flags]
                          load-test a broker (emqtt-bench style; --help)
`

// run executes one command and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "nanoactor %s\n", version)
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	case "start":
		return cmdStart(args[1:], stdout, stderr)
	case "config":
		return cmdConfig(args[1:], stdout, stderr)
	case "pub":
		return cmdPub(args[1:], os.Stdin, stdout, stderr)
	case "sub":
		return cmdSub(args[1:], stdout, stderr)
	case "bench":
		return cmdBench(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "nanoactor: unknown command %q\n\n%s", args[0], usage)
	return 2
}
