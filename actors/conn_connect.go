package actors

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/protocol/topic"
	"github.com/nanoactor/nanoactor/transport"
)

// connectFailed answers a CONNECT that did not decode: a CONNACK with the
// reason where the version has one, then close [MQTT-3.2.2-5]
// [MQTT-3.2.2-7]. An unsupported protocol level gets the 3.1.1 CONNACK
// 0x01 [MQTT-3.1.2-2], or the v5 0x84 when the client spoke v5.
func (c *conn) connectFailed(ctx actor.Context, level protocol.Version, err error) {
	var rc protocol.ReasonCode
	if !errors.As(err, &rc) {
		c.close(ctx, "connect failed", err, false)
		return
	}
	c.version = level
	c.refuse(ctx, rc, err)
}

// refuse sends a failing CONNACK (if the version has a code for rc) and
// closes.
func (c *conn) refuse(ctx actor.Context, rc protocol.ReasonCode, err error) {
	// Connack.Reason is a v5 code in every version; for 3.x Append writes
	// the return code ConnackCodeFor maps it to.
	ack := &protocol.Connack{Reason: rc}
	if c.version < protocol.Version5 {
		if _, ok := protocol.ConnackCodeFor(rc); !ok {
			c.close(ctx, rc.String(), err, false) // 3.1.1: no code for it, just close [MQTT-3.2.2-6]
			return
		}
	}
	buf, e := ack.Append(nil, c.version)
	if e != nil {
		c.close(ctx, rc.String(), errors.Join(err, e), false)
		return
	}
	c.closed = true
	c.out.CloseAfter(0, err, buf)
	c.finish(ctx, "connect refused: "+rc.String(), err, false)
}

// connect runs the CONNECT checks, builds the CONNACK and asks the registry
// for the session; the session sends the CONNACK so that nothing overtakes
// it [MQTT-3.2.0-1].
func (c *conn) connect(ctx actor.Context, cp *protocol.Connect) {
	defer freeConnect(cp) // nothing keeps it: what outlives it is copied or the body's
	c.version = cp.Level
	v5 := cp.Level >= protocol.Version5
	o := &c.b.opt
	id := string(cp.ClientID)
	assigned := false
	if id == "" {
		switch {
		case cp.Level == protocol.Version31:
			c.refuse(ctx, protocol.ReasonClientIdentifierNotValid, errors.New("empty client id in MQTT 3.1"))
			return
		case !v5 && !cp.CleanStart:
			// [MQTT-3.1.3-8] empty client id needs clean session in 3.1.1.
			c.refuse(ctx, protocol.ReasonClientIdentifierNotValid, errors.New("empty client id without clean session"))
			return
		case !o.AllowEmptyClientID:
			c.refuse(ctx, protocol.ReasonClientIdentifierNotValid, errors.New("empty client id not allowed"))
			return
		}
		id = "auto-" + randomID() // [MQTT-3.1.3-6] [MQTT-3.1.3-7]
		assigned = true
	}
	if !c.lis.so.Internal && strings.HasPrefix(id, ReservedClientIDPrefix) {
		// A refused client identifier: 0x85, or 3.1.1 return code 0x02,
		// then close (v5 [MQTT-3.1.3-8], 3.1.1 [MQTT-3.1.3-9]). These are
		// the sessions of this broker's bridges.
		c.refuse(ctx, protocol.ReasonClientIdentifierNotValid, fmt.Errorf("client id %q is reserved for bridges", id))
		return
	}
	if len(id) > o.MaxClientIDLen {
		c.refuse(ctx, protocol.ReasonClientIdentifierNotValid, fmt.Errorf("client id of %d bytes", len(id)))
		return
	}
	c.clientID = id
	if v5 && cp.Props.Has(protocol.PropAuthMethod) {
		// No enhanced authentication method is supported [MQTT-4.12.0-1].
		c.refuse(ctx, protocol.ReasonBadAuthenticationMethod, fmt.Errorf("authentication method %q", cp.Props.AuthMethod))
		return
	}
	username := string(cp.Username)
	if c.lis.so.IdentityMode != "" {
		// use_identity_as_username: the verified certificate names the user.
		who, ok := transport.PeerIdentity(c.nc, c.lis.so.IdentityMode)
		if !ok {
			c.refuse(ctx, protocol.ReasonNotAuthorized, errors.New("no verified client certificate identity"))
			return
		}
		username = who
	}
	c.username = username
	if o.Auth != nil && !o.Auth(id, username, cp.Password, c.remote) {
		c.refuse(ctx, protocol.ReasonBadUsernameOrPassword, errors.New("authentication failed"))
		return
	}
	var will *Message
	var willDelay time.Duration
	if cp.WillFlag {
		if err := topic.ValidName(cp.Will.Topic); err != nil {
			c.refuse(ctx, protocol.ReasonTopicNameInvalid, fmt.Errorf("will topic: %w", err)) // [MQTT-3.1.3-11]
			return
		}
		if cp.Will.QoS > o.MaximumQoS {
			c.refuse(ctx, protocol.ReasonQoSNotSupported, errors.New("will qos above maximum")) // [MQTT-3.2.2-12]
			return
		}
		if cp.Will.Retain && !o.RetainAvailable {
			c.refuse(ctx, protocol.ReasonRetainNotSupported, errors.New("will retain not available")) // [MQTT-3.2.2-13]
			return
		}
		pub := &protocol.Publish{Topic: cp.Will.Topic, Payload: cp.Will.Payload, QoS: cp.Will.QoS, Retain: cp.Will.Retain}
		if v5 {
			pub.Props = cp.Will.Props
			if cp.Will.Props.Has(protocol.PropWillDelay) {
				willDelay = time.Duration(cp.Will.Props.WillDelay) * time.Second
			}
		}
		will = newMessage(pub, id, time.Now())
	}

	// Session expiry: v5 property (0 when absent), capped; 3.1.1 clean
	// session 0 keeps the session for max_session_expiry.
	var expiry time.Duration
	var expiryCapped bool
	if v5 {
		if cp.Props.Has(protocol.PropSessionExpiry) {
			if cp.Props.SessionExpiry == 0xFFFFFFFF {
				expiry = o.MaxSessionExpiry // "never expires", capped
				expiryCapped = true
			} else {
				expiry = time.Duration(cp.Props.SessionExpiry) * time.Second
			}
		}
		if expiry > o.MaxSessionExpiry {
			expiry, expiryCapped = o.MaxSessionExpiry, true
		}
		c.expiry0 = expiry == 0
	} else if !cp.CleanStart {
		expiry = o.MaxSessionExpiry
	}

	ack := newConnack() // the session gives it back
	h := &connHandle{pid: c.self, out: c.out, gen: c.id, version: cp.Level, receiveMax: 65535,
		clientID: id, remote: c.remote, quota: &c.quota, bridge: cp.Bridge}
	c.hnd = h
	if v5 {
		if cp.Props.Has(protocol.PropReceiveMaximum) {
			h.receiveMax = int(cp.Props.ReceiveMaximum)
		}
		if cp.Props.Has(protocol.PropMaximumPacketSize) {
			h.maxPacket = int(cp.Props.MaximumPacketSize)
		}
		if cp.Props.Has(protocol.PropTopicAliasMaximum) {
			h.aliasMax = cp.Props.TopicAliasMaximum
		}
		p := &ack.Props
		if assigned {
			p.AssignedClientID = []byte(id) // [MQTT-3.2.2-16]
			p.Set(protocol.PropAssignedClientID)
		}
		p.ReceiveMaximum = o.ReceiveMaximum
		p.Set(protocol.PropReceiveMaximum)
		if o.MaximumQoS < 2 {
			p.MaximumQoS = o.MaximumQoS // [MQTT-3.2.2-9]
			p.Set(protocol.PropMaximumQoS)
		}
		if !o.RetainAvailable {
			p.RetainAvailable = 0
			p.Set(protocol.PropRetainAvailable)
		}
		p.MaximumPacketSize = uint32(o.MaxPacketSize)
		p.Set(protocol.PropMaximumPacketSize)
		p.TopicAliasMaximum = o.TopicAliasMax
		if o.TopicAliasMax > 0 {
			p.Set(protocol.PropTopicAliasMaximum)
		}
		if !o.WildcardAvailable {
			p.Set(protocol.PropWildcardSubAvailable)
		}
		if !o.SubIDAvailable {
			p.Set(protocol.PropSubIDAvailable)
		}
		if !o.SharedAvailable {
			p.Set(protocol.PropSharedSubAvailable)
		}
		if ka := c.effectiveKeepalive(cp); ka != cp.KeepAlive {
			p.ServerKeepAlive = ka // [MQTT-3.2.2-21]
			p.Set(protocol.PropServerKeepAlive)
		}
		if expiryCapped {
			p.SessionExpiry = uint32(expiry / time.Second)
			p.Set(protocol.PropSessionExpiry)
		}
	}
	c.logClient = true
	c.describe()
	c.connecting = true // until attached: see stop
	ctx.Send(c.b.registry, &connectReq{clientID: id, attach: &attach{conn: h, cleanStart: cp.CleanStart,
		expiry: expiry, will: will, willDelay: willDelay, connack: ack}})
}

func (c *conn) attached(ctx actor.Context, m *attached) {
	c.session, c.smb = m.session, m.mb
	c.connecting = false
	if !c.closed {
		c.connected = true
		c.startWatchdog()
		c.log().Debug("client connected", "version", c.version.String(), "session_present", m.present, "username", c.username)
	}
	// What the client sent after CONNECT goes now, in order — even if the
	// connection has since closed: those messages were received
	// [MQTT-4.5.0-1] (mosquitto_pub sends CONNECT, PUBLISH, DISCONNECT in
	// one write).
	early := c.early
	c.early = nil
	for _, pm := range early {
		c.handle(ctx, pm)
	}
	if c.closed {
		if c.detachPending {
			c.detach(ctx, c.pendingWill, c.pendingExpiry)
		} else {
			c.detach(ctx, true, nil)
		}
		ctx.Stop(c.self)
		return
	}
	if f := c.earlyFail; f != nil {
		c.earlyFail = nil
		c.readFailed(ctx, f)
	}
}

func randomID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
