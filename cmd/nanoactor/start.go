package main

import (
	"fmt"
	"io"
)

func cmdStart(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "nanoactor: the broker is not built yet (issue 3: core broker); the codec is in protocol/")
	return 1
}

func cmdConfig(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "nanoactor: configuration is not built yet (issue 3: core broker)")
	return 1
}
