package supervisor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"time"

	"github.com/nanoactor/nanoactor/actors"
	"github.com/nanoactor/nanoactor/config"
	"github.com/nanoactor/nanoactor/transport"
)

// Node is a running broker: the actor tree and its listeners. Start builds
// it; Shutdown stops it in order.
type Node struct {
	cfg       *config.Config
	log       *slog.Logger
	broker    *actors.Broker
	policies  Policies
	listeners []boundListener
}

type boundListener struct {
	cfg  config.Listener
	l    transport.Listener
	addr net.Addr
}

// Options returns the actor options a configuration asks for.
func Options(cfg *config.Config, log *slog.Logger) actors.Options {
	m := &cfg.MQTT
	return actors.Options{
		Node:               cfg.Node.Name,
		MaxPacketSize:      int(m.MaxPacketSize),
		ConnectPacketMax:   int(m.ConnectPacketMax),
		ConnectTimeout:     m.ConnectTimeout.Std(),
		ReceiveMaximum:     uint16(m.ReceiveMaximum),
		MaxInflight:        m.MaxInflight,
		MaxQueued:          queuedLimit(m.MaxQueuedMessages),
		MaxQueuedBytes:     int(m.MaxQueuedBytes),
		QueueQoS0:          m.QueueQoS0Messages,
		MaxOutboundBytes:   int(m.MaxOutboundBytes),
		WriteTimeout:       m.WriteTimeout.Std(),
		ProgressTimeout:    m.ProgressTimeout.Std(),
		DisconnectSlow:     m.SlowClientPolicy == config.SlowClientDisconnect,
		KeepaliveMax:       uint16(m.KeepaliveMax),
		KeepaliveDefault:   uint16(m.KeepaliveDefault),
		MaxSessionExpiry:   m.MaxSessionExpiry.Std(),
		NoSessionExpiry:    m.MaxSessionExpiry == 0,
		TopicAliasMax:      uint16(m.TopicAliasMaximum),
		MaxTopicLevels:     m.MaxTopicLevels,
		MaximumQoS:         byte(m.MaximumQoS),
		RetainAvailable:    m.RetainAvailable,
		WildcardAvailable:  m.WildcardSubscriptionAvailable,
		SharedAvailable:    m.SharedSubscriptionAvailable,
		SubIDAvailable:     m.SubscriptionIdentifierAvailable,
		SharedRandom:       m.SharedSubscriptionStrategy == config.SharedRandom,
		AllowEmptyClientID: m.AllowZeroLengthClientID,
		MaxClientIDLen:     m.MaxClientIDLen,
		MaxSubscriptions:   m.MaxSubscriptions,
		RetainedMax:        m.RetainedMaxMessages,
		RetainedMaxBytes:   int(m.RetainedMaxBytes),
		SysInterval:        cfg.Sys.Interval.Std(),
		Logger:             log,
	}
}

// Start builds the actor tree and opens every listener. If any listener
// cannot be opened, everything opened so far is closed and the error names
// the listener.
func Start(cfg *config.Config, log *slog.Logger) (*Node, error) {
	n := &Node{cfg: cfg, log: log}
	opt := Options(cfg, log)
	var b *actors.Broker
	n.policies = Default(cfg.Node.Name, log, func(pid any) []any { return b.DescribePipe(pid) })
	opt.PipeStrategy = n.policies.Pipes
	opt.SessionStrategy = n.policies.Sessions
	opt.TopicStrategy = n.policies.Topics
	b = actors.New(opt)
	n.broker = b
	for _, lc := range cfg.Listeners {
		l, err := listen(lc)
		if err != nil {
			for _, bl := range n.listeners {
				bl.l.Close()
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			b.Shutdown(ctx)
			return nil, fmt.Errorf("listener %q: %w", lc.Name, err)
		}
		n.listeners = append(n.listeners, boundListener{cfg: lc, l: l, addr: l.Addr()})
		log.Info("listening", "node", cfg.Node.Name, "listener", lc.Name, "protocol", lc.Protocol, "addr", l.Addr().String())
	}
	for _, bl := range n.listeners {
		b.Serve(bl.cfg.Name, bl.l, bl.cfg.MaxConnections)
	}
	return n, nil
}

func listen(lc config.Listener) (transport.Listener, error) {
	switch lc.Protocol {
	case config.ProtocolTCP:
		return transport.ListenTCP(lc.Bind)
	}
	return nil, fmt.Errorf("protocol %q is not served by this build", lc.Protocol)
}

// Addr returns the bound address of the listener named name (useful with
// port 0), or nil.
func (n *Node) Addr(name string) net.Addr {
	for _, bl := range n.listeners {
		if bl.cfg.Name == name {
			return bl.addr
		}
	}
	return nil
}

// Addrs returns the bound addresses of every listener, in configuration
// order.
func (n *Node) Addrs() []net.Addr {
	out := make([]net.Addr, len(n.listeners))
	for i, bl := range n.listeners {
		out[i] = bl.addr
	}
	return out
}

// Broker returns the running broker.
func (n *Node) Broker() *actors.Broker { return n.broker }

// Policies returns the supervision strategies in use.
func (n *Node) Policies() Policies { return n.policies }

// Shutdown stops in order: listeners stop accepting, connections close
// (v5 DISCONNECT 0x8B), wills due are published, actors stop. It returns
// ctx's error if that takes longer than ctx allows.
func (n *Node) Shutdown(ctx context.Context) error {
	start := time.Now()
	err := n.broker.Shutdown(ctx)
	if err != nil && !errors.Is(err, context.Canceled) {
		n.log.Warn("shutdown incomplete", "node", n.cfg.Node.Name, "reason", err.Error())
		return err
	}
	n.log.Info("stopped", "node", n.cfg.Node.Name, "took", time.Since(start).Round(time.Millisecond).String())
	return err
}

// queuedLimit maps max_queued_messages (0 = no count limit) to the actors'
// option (where 0 means the default).
func queuedLimit(n int) int {
	if n == 0 {
		return math.MaxInt
	}
	return n
}
