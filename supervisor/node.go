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
	"github.com/nanoactor/nanoactor/bridge"
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
	bridges   *bridge.Tree
}

type boundListener struct {
	cfg   config.Listener
	l     transport.Listener
	addr  net.Addr
	certs *transport.CertStore // tls, wss, quic: reloaded on SIGHUP
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
		bl, err := listen(lc, cfg.MQTT.ConnectTimeout.Std())
		if err != nil {
			for _, bl := range n.listeners {
				bl.l.Close()
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			b.Shutdown(ctx)
			return nil, fmt.Errorf("listener %q: %w", lc.Name, err)
		}
		n.listeners = append(n.listeners, bl)
		log.Info("listening", "node", cfg.Node.Name, "listener", lc.Name, "protocol", lc.Protocol, "addr", bl.addr.String())
	}
	var bridges []*bridge.Bridge
	for _, bc := range cfg.Bridges {
		br, err := bridge.New(bridge.Options{Config: bc, Node: cfg.Node.Name, Broker: b,
			MaxPacketSize: int(cfg.MQTT.MaxPacketSize), Logger: log})
		if err != nil {
			for _, bl := range n.listeners {
				bl.l.Close()
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			b.Shutdown(ctx)
			return nil, err
		}
		bridges = append(bridges, br)
	}
	for _, bl := range n.listeners {
		b.Serve(bl.cfg.Name, bl.l, actors.ServeOptions{MaxConns: bl.cfg.MaxConnections,
			IdentityMode: bl.cfg.UseIdentityAsUsername, HandshakeTimeout: cfg.MQTT.ConnectTimeout.Std()})
	}
	if len(bridges) > 0 {
		n.bridges = bridge.NewTree(b.ActorSystem(), n.policies.Bridges)
		for _, br := range bridges {
			n.bridges.Start(br)
		}
	}
	return n, nil
}

// Bridges returns the running bridges, in configuration order.
func (n *Node) Bridges() []*bridge.Bridge {
	if n.bridges == nil {
		return nil
	}
	return n.bridges.Bridges()
}

// listen opens one listener. Every protocol yields a byte stream to the
// same MQTT code; TLS-based ones share a reloadable certificate store.
// Handshakes are bounded by handshake (the CONNECT timeout).
func listen(lc config.Listener, handshake time.Duration) (boundListener, error) {
	bl := boundListener{cfg: lc}
	if lc.TLS() {
		store, err := transport.NewCertStore(transport.TLSConfig{CertFile: lc.CertFile, KeyFile: lc.KeyFile,
			CAFile: lc.CAFile, VerifyPeer: lc.VerifyPeer, MinVersion: lc.TLSMinVersion()})
		if err != nil {
			return bl, err
		}
		bl.certs = store
	}
	var err error
	switch lc.Protocol {
	case config.ProtocolTCP:
		bl.l, err = transport.ListenTCP(lc.Bind)
	case config.ProtocolTLS:
		bl.l, err = transport.ListenTLS(lc.Bind, bl.certs.ServerConfig(), handshake)
	case config.ProtocolWS:
		bl.l, err = transport.ListenWS(lc.Bind, lc.Path, nil, handshake)
	case config.ProtocolWSS:
		bl.l, err = transport.ListenWS(lc.Bind, lc.Path, bl.certs.ServerConfig(), handshake)
	case config.ProtocolQUIC:
		bl.l, err = transport.ListenQUIC(lc.Bind, bl.certs.ServerConfig(), handshake)
	default:
		err = fmt.Errorf("protocol %q is not served by this build", lc.Protocol)
	}
	if err != nil {
		return bl, err
	}
	if lc.Protocol != config.ProtocolQUIC {
		if err := transport.SetNoDelay(bl.l, lc.NoDelay()); err != nil {
			_ = bl.l.Close()
			return bl, err
		}
	}
	bl.addr = bl.l.Addr()
	return bl, nil
}

// Reload re-reads the certificate and key files of every TLS, WSS and
// QUIC listener (SIGHUP). Existing connections are untouched; a listener
// whose files fail to load keeps its current certificate. It returns the
// errors joined, each naming its listener.
func (n *Node) Reload() error {
	var errs []error
	for _, bl := range n.listeners {
		if bl.certs == nil {
			continue
		}
		if err := bl.certs.Reload(); err != nil {
			n.log.Error("certificate reload failed; keeping the current certificate", "node", n.cfg.Node.Name,
				"listener", bl.cfg.Name, "reason", err.Error())
			errs = append(errs, fmt.Errorf("listener %q: %w", bl.cfg.Name, err))
			continue
		}
		n.log.Info("certificate reloaded", "node", n.cfg.Node.Name, "listener", bl.cfg.Name)
	}
	return errors.Join(errs...)
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
	if n.bridges != nil {
		// Bridges first: they say DISCONNECT to their remotes while the
		// local broker still runs.
		if err := n.bridges.Stop(ctx); err != nil {
			n.log.Warn("bridges did not stop in time", "node", n.cfg.Node.Name, "reason", err.Error())
		}
	}
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
