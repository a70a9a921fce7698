package supervisor

import (
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/nanoactor/nanoactor/config"
)

// TestListenTCPNoDelay: a listener's tcp_nodelay reaches the sockets it
// accepts (left out: TCP_NODELAY set; false: Nagle's algorithm on).
func TestListenTCPNoDelay(t *testing.T) {
	off := false
	for _, tc := range []struct {
		set  *bool
		want bool
	}{{nil, true}, {&off, false}} {
		bl, err := listen(config.Listener{Protocol: config.ProtocolTCP, Bind: "127.0.0.1:0", TCPNoDelay: tc.set}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		d, err := net.Dial("tcp", bl.addr.String())
		if err != nil {
			t.Fatal(err)
		}
		c, err := bl.l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := c.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var gerr error
		rc.Control(func(fd uintptr) {
			v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_NODELAY)
		})
		if gerr != nil {
			t.Fatal(gerr)
		}
		if got := v != 0; got != tc.want {
			t.Errorf("tcp_nodelay %v: TCP_NODELAY = %v, want %v", tc.set, got, tc.want)
		}
		c.Close()
		d.Close()
		bl.l.Close()
	}
}
