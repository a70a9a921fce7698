package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/protocol/topic"
)

// subscribe validates each filter, records it and asks the topic actor to
// apply it; the SUBACK goes out when the topic actor confirms, so a
// PUBLISH that follows the SUBACK is always matched [MQTT-3.8.4-?].
func (s *session) subscribe(ctx actor.Context, p *protocol.Subscribe) {
	if s.conn == nil {
		return
	}
	v5 := s.v5()
	req := &subscribeReq{clientID: s.clientID, session: s.self, packetID: p.PacketID,
		reasons: make([]protocol.ReasonCode, len(p.Filters)), props: v5}
	subID := 0
	if len(p.Props.SubscriptionIDs) > 0 {
		subID = p.Props.SubscriptionIDs[0]
	}
	for i, f := range p.Filters {
		if protocol.CheckFilter(f, s.conn.version) == protocol.ReasonProtocolError {
			// No Local on a shared subscription [MQTT-3.8.3-4]: not a SUBACK code.
			s.kickConn(ctx, protocol.ReasonProtocolError, "no local on a shared subscription")
			return
		}
		rc := s.checkFilter(f)
		if rc.IsError() {
			req.reasons[i] = protocol.SubackReason(rc, s.conn.version) // 3.1.1: 0x80 [MQTT-3.9.3-2]
			continue
		}
		q := f.QoS
		if q > s.b.opt.MaximumQoS {
			q = s.b.opt.MaximumQoS // the server may grant a lower QoS [MQTT-3.9.3-?]
		}
		req.reasons[i] = protocol.ReasonCode(q)
		filter := string(f.Filter)
		_, shared := sharedFilter(f.Filter)
		existed := s.subs[filter] != nil
		e := subEntry{session: s.self, qos: q, noLocal: f.NoLocal && v5 || s.conn.bridge,
			rap: f.RetainAsPublished && v5 || s.conn.bridge, subID: subID,
			backlog: &s.backlog}
		if !v5 {
			e.subID = 0
		}
		if s.subs == nil {
			s.subs = map[string]*subscription{}
		}
		s.subs[filter] = &subscription{filter: filter, entry: e}
		send := false
		switch f.RetainHandling {
		case 0:
			send = true // [MQTT-3.3.1-9] on every subscribe
		case 1:
			send = !existed // [MQTT-3.3.1-10] only if new
		}
		req.items = append(req.items, subItem{index: i, filter: filter, entry: e, sendRetained: send && !shared})
	}
	ctx.Send(s.b.topics, req)
}

// checkFilter returns the SUBACK code for a filter this broker refuses,
// or Success.
func (s *session) checkFilter(f protocol.Subscription) protocol.ReasonCode {
	if err := topic.ValidFilter(f.Filter); err != nil {
		return protocol.ReasonTopicFilterInvalid // [MQTT-4.7.1-2] [MQTT-4.7.1-3]
	}
	inner, shared := sharedFilter(f.Filter)
	if shared {
		if _, _, _, err := topic.ParseShared(f.Filter); err != nil {
			return protocol.ReasonTopicFilterInvalid // [MQTT-4.8.2-1] [MQTT-4.8.2-2]
		}
		if !s.b.opt.SharedAvailable {
			return protocol.ReasonSharedSubscriptionsNotSupported
		}
	}
	if !s.b.opt.WildcardAvailable && hasWildcard(inner) {
		return protocol.ReasonWildcardSubscriptionsNotSupported
	}
	if max := s.b.opt.MaxTopicLevels; max > 0 && levels(inner) > max {
		return protocol.ReasonTopicFilterInvalid // max_topic_levels
	}
	if max := s.b.opt.MaxSubscriptions; max > 0 && s.subs[string(f.Filter)] == nil && len(s.subs) >= max {
		return protocol.ReasonQuotaExceeded // max_subscriptions
	}
	return protocol.ReasonSuccess
}

func sharedFilter(f []byte) (inner []byte, shared bool) {
	_, in, sh, err := topic.ParseShared(f)
	if err != nil || !sh {
		return f, false
	}
	return in, true
}

// levels counts the levels of a topic name or filter ("a/b" has 2).
func levels(t []byte) int {
	n := 1
	for _, c := range t {
		if c == '/' {
			n++
		}
	}
	return n
}

func hasWildcard(f []byte) bool {
	for _, c := range f {
		if c == '+' || c == '#' {
			return true
		}
	}
	return false
}

// subscribed sends the SUBACK, then the retained messages [MQTT-3.8.4-?].
func (s *session) subscribed(ctx actor.Context, m *subscribed) {
	if s.conn == nil {
		return // the SUBACK is lost with the connection; the client resends
	}
	for i, rc := range m.reasons {
		m.reasons[i] = protocol.SubackReason(rc, s.conn.version)
	}
	s.send(&protocol.Suback{PacketID: m.packetID, Reasons: m.reasons}) // [MQTT-3.8.4-1] [MQTT-3.8.4-2]
	for _, d := range m.retained {
		s.enqueue(d)
	}
}

// unsubscribe forgets the filters and asks the topic actor to drop them.
func (s *session) unsubscribe(ctx actor.Context, p *protocol.Unsubscribe) {
	req := &unsubscribeReq{clientID: s.clientID, session: s.self, packetID: p.PacketID,
		filters: make([]string, len(p.Filters))}
	left := map[sharedRef]bool{}
	for i, f := range p.Filters {
		req.filters[i] = string(f)
		delete(s.subs, req.filters[i])
		if g, inner, shared, err := topic.ParseShared(f); err == nil && shared {
			left[sharedRef{name: string(g), filter: string(inner)}] = true
		}
	}
	if len(left) > 0 {
		s.reshareAll(ctx, left)
	}
	ctx.Send(s.b.topics, req)
}

// unsubscribed sends the UNSUBACK [MQTT-3.10.4-4] [MQTT-3.10.4-5].
func (s *session) unsubscribed(m *unsubscribed) {
	ua := &protocol.Unsuback{PacketID: m.packetID}
	if s.v5() {
		ua.Reasons = m.reasons
	}
	s.send(ua)
}
