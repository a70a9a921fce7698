package actors

import (
	"testing"

	"github.com/nanoactor/nanoactor/protocol"
)

// TestAuthHook checks that CONNECT's username and password reach the
// authentication hook and that a refusal is CONNACK 0x86 (v5) / return
// code 0x04 (3.1.1), then close.
func TestAuthHook(t *testing.T) {
	opt := TestOptions()
	type call struct{ id, user, pass string }
	calls := make(chan call, 4)
	opt.Auth = func(id, user string, pass []byte, remote string) bool {
		calls <- call{id, user, string(pass)}
		return user == "good" && string(pass) == "secret"
	}
	_, addr := testBroker(t, opt)
	for _, v := range []protocol.Version{protocol.Version311, protocol.Version5} {
		for _, tc := range []struct {
			user, pass string
			ok         bool
		}{{"good", "secret", true}, {"good", "wrong", false}} {
			c := dial(t, addr, v)
			c.send(&protocol.Connect{Level: v, ClientID: []byte("a1"), CleanStart: true, KeepAlive: 30,
				UsernameFlag: true, Username: []byte(tc.user), PasswordFlag: true, Password: []byte(tc.pass)})
			ca := c.recv().(*protocol.Connack)
			got := <-calls
			if got != (call{"a1", tc.user, tc.pass}) {
				t.Fatalf("hook got %+v", got)
			}
			want := protocol.ReasonSuccess
			if !tc.ok {
				want = protocol.ReasonBadUsernameOrPassword // 3.1.1 encodes it as return code 0x04
			}
			if ca.Reason != want {
				t.Fatalf("%v %s/%s: CONNACK %v, want %v", v, tc.user, tc.pass, ca.Reason, want)
			}
			if !tc.ok {
				if _, _, err := c.r.Next(); err == nil {
					t.Fatal("connection still open after a refused CONNECT")
				}
			}
		}
	}
}
