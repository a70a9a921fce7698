package protocol_test

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nanoactor/nanoactor/protocol"
)

func TestCheckFilter(t *testing.T) {
	const (
		ok      = protocol.ReasonSuccess
		invalid = protocol.ReasonTopicFilterInvalid
		failure = protocol.ReasonUnspecifiedError // 3.1.1 SUBACK 0x80
		proto   = protocol.ReasonProtocolError
	)
	for _, tc := range []struct {
		filter  string
		noLocal bool
		v5      protocol.ReasonCode
		v311    protocol.ReasonCode
	}{
		{"a/b", false, ok, ok},
		{"a/b", true, ok, ok},
		{"#", false, ok, ok},
		{"+", false, ok, ok},
		{"+/tennis/#", false, ok, ok},
		{"sport/+/player1", false, ok, ok},
		{"/", false, ok, ok},
		{"$SYS/#", false, ok, ok},
		{"", false, invalid, failure},              // [MQTT-4.7.3-1]
		{"sport/tennis#", false, invalid, failure}, // [MQTT-4.7.1-1]
		{"sport/tennis/#/ranking", false, invalid, failure},
		{"sport+", false, invalid, failure}, // [MQTT-4.7.1-2]
		{"a/+b/c", false, invalid, failure},
		{"$share/g/a/+", false, ok, ok},
		{"$share/g/#", true, proto, proto},     // [MQTT-3.8.3-4]
		{"$share//a", false, invalid, failure}, // [MQTT-4.8.2-1]
		{"$share/g", false, invalid, failure},  // [MQTT-4.8.2-2]
		{"$share/g/", false, invalid, failure},
		{"$share/g+/a", false, invalid, failure},
		{"$share/g/a#", false, invalid, failure},
		{"$sharex/a", true, ok, ok}, // not a shared subscription
	} {
		s := protocol.Subscription{Filter: []byte(tc.filter), NoLocal: tc.noLocal}
		if got := protocol.CheckFilter(s, protocol.Version5); got != tc.v5 {
			t.Errorf("v5 CheckFilter(%q, no local %v) = %v, want %v", tc.filter, tc.noLocal, got, tc.v5)
		}
		if got := protocol.CheckFilter(s, protocol.Version311); got != tc.v311 {
			t.Errorf("v311 CheckFilter(%q, no local %v) = %v, want %v", tc.filter, tc.noLocal, got, tc.v311)
		}
	}
	bad := protocol.Subscription{Filter: []byte("$share/g/a/#/b")}
	if n := testing.AllocsPerRun(100, func() { protocol.CheckFilter(bad, protocol.Version5) }); n != 0 {
		t.Errorf("CheckFilter: %v allocs, want 0", n)
	}
}

func TestSubackReason(t *testing.T) {
	for _, tc := range []struct {
		in, v311 protocol.ReasonCode
	}{
		{protocol.ReasonGrantedQoS0, protocol.ReasonGrantedQoS0},
		{protocol.ReasonGrantedQoS1, protocol.ReasonGrantedQoS1},
		{protocol.ReasonGrantedQoS2, protocol.ReasonGrantedQoS2},
		{protocol.ReasonUnspecifiedError, protocol.ReasonUnspecifiedError},
		{protocol.ReasonTopicFilterInvalid, protocol.ReasonUnspecifiedError},
		{protocol.ReasonNotAuthorized, protocol.ReasonUnspecifiedError},
		{protocol.ReasonSharedSubscriptionsNotSupported, protocol.ReasonUnspecifiedError},
		{protocol.ReasonWildcardSubscriptionsNotSupported, protocol.ReasonUnspecifiedError},
	} {
		if got := protocol.SubackReason(tc.in, protocol.Version311); got != tc.v311 {
			t.Errorf("SubackReason(%v, 3.1.1) = %v, want %v", tc.in, got, tc.v311)
		}
		if got := protocol.SubackReason(tc.in, protocol.Version5); got != tc.in {
			t.Errorf("SubackReason(%v, 5) = %v, want it unchanged", tc.in, got)
		}
		// Whatever the mapping yields, Suback encodes.
		ack := protocol.Suback{PacketID: 1, Reasons: []protocol.ReasonCode{protocol.SubackReason(tc.in, protocol.Version311)}}
		if _, err := ack.Append(nil, protocol.Version311); err != nil {
			t.Errorf("Suback with mapped %v: %v", tc.in, err)
		}
	}
}

func TestSubscribeAppendRefuses(t *testing.T) {
	long := bytes.Repeat([]byte("a"), 65536)
	a := []byte("a")
	for _, tc := range []struct {
		name string
		s    protocol.Subscribe
		v    protocol.Version
		want protocol.ReasonCode
	}{
		{"packet id 0", protocol.Subscribe{Filters: []protocol.Subscription{{Filter: a}}}, protocol.Version311, protocol.ReasonProtocolError},
		{"no filter", protocol.Subscribe{PacketID: 1}, protocol.Version5, protocol.ReasonProtocolError},
		{"filter over 65535 bytes", protocol.Subscribe{PacketID: 1, Filters: []protocol.Subscription{{Filter: long}}}, protocol.Version311, protocol.ReasonMalformedPacket},
		{"qos 3", protocol.Subscribe{PacketID: 1, Filters: []protocol.Subscription{{Filter: a, QoS: 3}}}, protocol.Version5, protocol.ReasonMalformedPacket},
		{"retain handling 3", protocol.Subscribe{PacketID: 1, Filters: []protocol.Subscription{{Filter: a, RetainHandling: 3}}}, protocol.Version5, protocol.ReasonProtocolError},
		{"two subscription identifiers", protocol.Subscribe{PacketID: 1, Props: protocol.Properties{SubscriptionIDs: []int{1, 2}},
			Filters: []protocol.Subscription{{Filter: a}}}, protocol.Version5, protocol.ReasonProtocolError},
		{"subscription identifier too large", protocol.Subscribe{PacketID: 1, Props: protocol.Properties{SubscriptionIDs: []int{protocol.MaxRemainingLength + 1}},
			Filters: []protocol.Subscription{{Filter: a}}}, protocol.Version5, protocol.ReasonProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) { appendFails(t, &tc.s, tc.v, tc.want) })
	}
}

// TestSubscribeV311DropsV5Options: 3.1.1 has only the QoS byte, so the v5
// options are not encoded (they would be reserved bits there) and decode as
// zero.
func TestSubscribeV311DropsV5Options(t *testing.T) {
	s := protocol.Subscribe{PacketID: 3, Props: protocol.Properties{SubscriptionIDs: []int{9}},
		Filters: []protocol.Subscription{{Filter: []byte("a"), QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}}
	b, err := s.Append(nil, protocol.Version311)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x82, 0x06, 0x00, 0x03, 0x00, 0x01, 'a', 0x01}; !bytes.Equal(b, want) {
		t.Fatalf("got % x, want % x", b, want)
	}
	var got protocol.Subscribe
	h, body := parse(t, b)
	if err := got.Decode(h, body, protocol.Version311); err != nil {
		t.Fatal(err)
	}
	want := protocol.Subscribe{PacketID: 3, Filters: []protocol.Subscription{{Filter: []byte("a"), QoS: 1}}}
	if d := cmp.Diff(&want, &got, packetCmp...); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
}

func TestSubackAppendRefuses(t *testing.T) {
	one := []protocol.ReasonCode{protocol.ReasonGrantedQoS1}
	appendFails(t, &protocol.Suback{Reasons: one}, protocol.Version5, protocol.ReasonProtocolError)
	appendFails(t, &protocol.Suback{PacketID: 1}, protocol.Version311, protocol.ReasonProtocolError)
	appendFails(t, &protocol.Suback{PacketID: 1, Reasons: []protocol.ReasonCode{protocol.ReasonTopicFilterInvalid}},
		protocol.Version311, protocol.ReasonProtocolError) // [MQTT-3.9.3-2]: map with SubackReason first
	appendFails(t, &protocol.Suback{PacketID: 1, Reasons: []protocol.ReasonCode{protocol.ReasonMalformedPacket}},
		protocol.Version5, protocol.ReasonProtocolError)
	appendFails(t, &protocol.Suback{PacketID: 1, Reasons: []protocol.ReasonCode{3}}, protocol.Version5, protocol.ReasonProtocolError)
}

func TestUnsubscribeAppendRefuses(t *testing.T) {
	appendFails(t, &protocol.Unsubscribe{Filters: [][]byte{[]byte("a")}}, protocol.Version311, protocol.ReasonProtocolError)
	appendFails(t, &protocol.Unsubscribe{PacketID: 1}, protocol.Version5, protocol.ReasonProtocolError)
	appendFails(t, &protocol.Unsubscribe{PacketID: 1, Filters: [][]byte{bytes.Repeat([]byte("a"), 65536)}},
		protocol.Version5, protocol.ReasonMalformedPacket)
	sid := protocol.Properties{SubscriptionIDs: []int{1}}
	appendFails(t, &protocol.Unsubscribe{PacketID: 1, Props: sid, Filters: [][]byte{[]byte("a")}},
		protocol.Version5, protocol.ReasonMalformedPacket)
}

func TestUnsubackAppend(t *testing.T) {
	appendFails(t, &protocol.Unsuback{}, protocol.Version311, protocol.ReasonProtocolError)
	appendFails(t, &protocol.Unsuback{PacketID: 1}, protocol.Version5, protocol.ReasonProtocolError)
	appendFails(t, &protocol.Unsuback{PacketID: 1, Reasons: []protocol.ReasonCode{protocol.ReasonGrantedQoS1}},
		protocol.Version5, protocol.ReasonProtocolError)
	// 3.1.1 has no reason codes: they are not encoded.
	u := protocol.Unsuback{PacketID: 5, Reasons: []protocol.ReasonCode{protocol.ReasonNoSubscriptionExisted}}
	b, err := u.Append(nil, protocol.Version311)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0xB0, 0x02, 0x00, 0x05}; !bytes.Equal(b, want) || u.Len(protocol.Version311) != len(want) {
		t.Fatalf("got % x (Len %d), want % x", b, u.Len(protocol.Version311), want)
	}
}

func TestPing(t *testing.T) {
	for _, tc := range []struct {
		pk   protocol.Packet
		want []byte
	}{
		{&protocol.Pingreq{}, []byte{0xC0, 0x00}},
		{&protocol.Pingresp{}, []byte{0xD0, 0x00}},
	} {
		b, err := tc.pk.Append(make([]byte, 0, 2), protocol.Version5)
		if err != nil || !bytes.Equal(b, tc.want) || tc.pk.Len(protocol.Version311) != 2 {
			t.Errorf("%v: % x, %v", tc.pk.Type(), b, err)
		}
		if n := testing.AllocsPerRun(100, func() { _, _ = tc.pk.Append(b[:0], protocol.Version5) }); n != 0 {
			t.Errorf("%v Append: %v allocs", tc.pk.Type(), n)
		}
	}
}

// TestSubscribeDecodeAllocs: after a warm-up decode has grown Filters (and
// the properties' slices), decoding into the same values does not allocate.
func TestSubscribeDecodeAllocs(t *testing.T) {
	s := protocol.Subscribe{PacketID: 7, Props: protocol.Properties{SubscriptionIDs: []int{12},
		User: []protocol.UserProperty{{Key: []byte("k"), Value: []byte("v")}}}}
	for _, f := range []string{"a/b", "c/+/d", "$share/g/e/#", "f"} {
		s.Filters = append(s.Filters, protocol.Subscription{Filter: []byte(f), QoS: 1, RetainHandling: 1})
	}
	u := protocol.Unsubscribe{PacketID: 8, Filters: [][]byte{[]byte("a/b"), []byte("c/+/d"), []byte("f")}}
	ack := protocol.Suback{PacketID: 7, Reasons: []protocol.ReasonCode{0, 1, 2, protocol.ReasonTopicFilterInvalid}}
	for _, v := range []protocol.Version{protocol.Version311, protocol.Version5} {
		for _, pk := range []protocol.Packet{&s, &u, &ack} {
			if v < protocol.Version5 && pk == protocol.Packet(&ack) {
				continue // 0x8F is not a 3.1.1 code; covered by v5
			}
			raw, err := pk.Append(nil, v)
			if err != nil {
				t.Fatal(err)
			}
			h, body := parse(t, raw)
			dst := protocol.New(h.Type)
			if err := dst.Decode(h, body, v); err != nil { // warm-up
				t.Fatal(err)
			}
			if n := testing.AllocsPerRun(100, func() {
				if err := dst.Decode(h, body, v); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("%s %v: Decode into a reused value: %v allocs, want 0", v, h.Type, n)
			}
		}
	}
}
