//go:build linux

package transport

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// Accepted TCP connections have TCP_NODELAY and keepalive set.
func TestListenTCPSocketOptions(t *testing.T) {
	srv, cli := tcpPair(t)
	defer srv.Close()
	defer cli.Close()
	rc, err := srv.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	opts := []struct {
		name       string
		level, opt int
		want       int
	}{
		{"TCP_NODELAY", syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1},
		{"SO_KEEPALIVE", syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE, int(TCPKeepAliveIdle / time.Second)},
		{"TCP_KEEPINTVL", syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL, int(TCPKeepAliveInterval / time.Second)},
		{"TCP_KEEPCNT", syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT, TCPKeepAliveCount},
	}
	for _, o := range opts {
		var got int
		var serr error
		if err := rc.Control(func(fd uintptr) {
			got, serr = syscall.GetsockoptInt(int(fd), o.level, o.opt)
		}); err != nil || serr != nil {
			t.Fatal(o.name, err, serr)
		}
		if got != o.want {
			t.Errorf("%s = %d, want %d", o.name, got, o.want)
		}
	}
}
