//go:build !unix

package transport

import "syscall"

const inlineSupported = false

func writev(int, [][]byte) (int, error) { return 0, syscall.EINVAL }

func write1(int, []byte) (int, error) { return 0, syscall.EINVAL }
