//go:build !linux

package transport

import "errors"

// poller is Linux only (epoll); elsewhere Park reports ErrNotParkable.
type poller struct{}

// havePoller: Park works on this platform.
const havePoller = false

func newPoller() (*poller, error) { return nil, errors.New("transport: no poller on this platform") }

func (*poller) arm(*Park) error { return errors.New("transport: no poller") }
func (*poller) disarm(*Park)    {}
func (*poller) close()          {}
