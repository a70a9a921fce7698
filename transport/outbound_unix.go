//go:build unix

package transport

import "golang.org/x/sys/unix"

// inlineSupported: this platform can make a non-blocking vectored write on
// a raw socket (Outbound.writeInline).
const inlineSupported = true

// writev is one writev(2) call.
func writev(fd int, bufs [][]byte) (int, error) {
	return unix.Writev(fd, bufs)
}

// write1 is one write(2) call.
func write1(fd int, b []byte) (int, error) {
	return unix.Write(fd, b)
}
