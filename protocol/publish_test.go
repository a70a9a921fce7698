package protocol_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/protocol/fixture"
)

// parse splits a whole encoded packet into header and body.
func parse(t testing.TB, raw []byte) (protocol.Header, []byte) {
	t.Helper()
	h, n, err := protocol.ParseHeader(raw)
	if err != nil {
		t.Fatalf("parse header: %v", err)
	}
	if n+h.Remaining != len(raw) {
		t.Fatalf("header says %d body bytes, have %d", h.Remaining, len(raw)-n)
	}
	return h, raw[n:]
}

// wantReason fails unless err wraps the reason code want.
func wantReason(t *testing.T, err error, want protocol.ReasonCode) {
	t.Helper()
	var rc protocol.ReasonCode
	if !errors.As(err, &rc) || rc != want {
		t.Fatalf("got error %v, want reason %v", err, want)
	}
}

// appendFails checks that Append refuses pk with reason want and returns b
// unchanged.
func appendFails(t *testing.T, pk protocol.Packet, v protocol.Version, want protocol.ReasonCode) {
	t.Helper()
	prefix := []byte{0xAA, 0xBB}
	b, err := pk.Append(prefix, v)
	wantReason(t, err, want)
	if !bytes.Equal(b, []byte{0xAA, 0xBB}) {
		t.Fatalf("Append changed b on error: % x", b)
	}
}

func publishFixtures() []fixture.Case {
	var out []fixture.Case
	for _, c := range fixture.Valid() {
		if _, ok := c.Packet.(*protocol.Publish); ok && !c.DecodeOnly {
			out = append(out, c)
		}
	}
	return out
}

func TestPublishAppendRefuses(t *testing.T) {
	long := bytes.Repeat([]byte("a"), 65536)
	alias := protocol.Properties{TopicAlias: 1}
	alias.Set(protocol.PropTopicAlias)
	notAllowed := protocol.Properties{SessionExpiry: 1}
	notAllowed.Set(protocol.PropSessionExpiry)
	aliasZero := protocol.Properties{}
	aliasZero.Set(protocol.PropTopicAlias)
	for _, tc := range []struct {
		name string
		p    protocol.Publish
		v    protocol.Version
		want protocol.ReasonCode
	}{
		{"topic over 65535 bytes v311", protocol.Publish{Topic: long}, protocol.Version311, protocol.ReasonMalformedPacket},
		{"topic over 65535 bytes v5", protocol.Publish{Topic: long, Props: alias}, protocol.Version5, protocol.ReasonMalformedPacket},
		{"qos 3", protocol.Publish{Topic: []byte("t"), QoS: 3, PacketID: 1}, protocol.Version311, protocol.ReasonMalformedPacket},
		{"dup at qos 0", protocol.Publish{Topic: []byte("t"), Dup: true}, protocol.Version5, protocol.ReasonMalformedPacket},
		{"packet id 0 at qos 1", protocol.Publish{Topic: []byte("t"), QoS: 1}, protocol.Version311, protocol.ReasonProtocolError},
		{"packet id 0 at qos 2", protocol.Publish{Topic: []byte("t"), QoS: 2}, protocol.Version5, protocol.ReasonProtocolError},
		{"empty topic v311", protocol.Publish{}, protocol.Version311, protocol.ReasonMalformedPacket},
		{"empty topic v311 with alias", protocol.Publish{Props: alias}, protocol.Version311, protocol.ReasonMalformedPacket},
		{"empty topic v5 without alias", protocol.Publish{}, protocol.Version5, protocol.ReasonProtocolError},
		{"property not allowed", protocol.Publish{Topic: []byte("t"), Props: notAllowed}, protocol.Version5, protocol.ReasonMalformedPacket},
		{"topic alias 0", protocol.Publish{Topic: []byte("t"), Props: aliasZero}, protocol.Version5, protocol.ReasonTopicAliasInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			appendFails(t, &tc.p, tc.v, tc.want)
			_, err := tc.p.AppendHeaderOnly(nil, tc.v)
			wantReason(t, err, tc.want)
		})
	}
}

// TestPublishTooLarge builds v5 packets whose Remaining Length would exceed
// MaxRemainingLength without allocating hundreds of megabytes: every User
// Property shares one 64 KiB key and value.
func TestPublishTooLarge(t *testing.T) {
	big := bytes.Repeat([]byte("k"), 65535)
	per := 1 + 2 + len(big) + 2 + len(big)
	n := protocol.MaxRemainingLength/per + 1
	users := make([]protocol.UserProperty, n)
	for i := range users {
		users[i] = protocol.UserProperty{Key: big, Value: big}
	}
	pub := protocol.Publish{Topic: []byte("t"), Props: protocol.Properties{User: users}}
	if l := pub.Len(protocol.Version5); l <= protocol.MaxRemainingLength+5 {
		t.Fatalf("Len = %d, want more than the largest packet %d", l, protocol.MaxRemainingLength+5)
	}
	appendFails(t, &pub, protocol.Version5, protocol.ReasonPacketTooLarge)

	// 3.1.1 has no properties: there the same value is a tiny packet.
	b, err := pub.Append(nil, protocol.Version311)
	if err != nil || len(b) != pub.Len(protocol.Version311) {
		t.Fatalf("v311: %d bytes, err %v", len(b), err)
	}
}

// TestPublishTooLargePayload needs a real 256 MiB payload for 3.1.1, where
// only topic and payload count. The allocation is lazily zeroed memory that
// Append never touches, so it is cheap; -short skips it anyway.
func TestPublishTooLargePayload(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 256 MiB of address space")
	}
	payload := make([]byte, protocol.MaxRemainingLength-4) // + 2+1 topic + 2 packet id = max+1
	pub := protocol.Publish{Topic: []byte("t"), Payload: payload, QoS: 1, PacketID: 1}
	if got, want := pub.Len(protocol.Version311), protocol.MaxRemainingLength+1+5; got != want {
		t.Fatalf("Len = %d, want %d", got, want)
	}
	appendFails(t, &pub, protocol.Version311, protocol.ReasonPacketTooLarge)
	if _, err := pub.AppendHeaderOnly(nil, protocol.Version311); err == nil {
		t.Fatal("AppendHeaderOnly accepted a packet too large")
	}
	// One byte less is the largest PUBLISH there is: its header alone
	// encodes, with a four-byte Remaining Length.
	pub.Payload = payload[:len(payload)-1]
	head, err := pub.AppendHeaderOnly(nil, protocol.Version311)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x32, 0xFF, 0xFF, 0xFF, 0x7F, 0x00, 0x01, 't', 0x00, 0x01}; !bytes.Equal(head, want) {
		t.Fatalf("head = % x, want % x", head, want)
	}
}

func TestPublishQoS0OmitsPacketID(t *testing.T) {
	pub := protocol.Publish{Topic: []byte("t"), PacketID: 9, Payload: []byte("x")}
	b, err := pub.Append(nil, protocol.Version311)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x30, 0x04, 0x00, 0x01, 't', 'x'}; !bytes.Equal(b, want) {
		t.Fatalf("got % x, want % x", b, want)
	}
	if off := pub.PacketIDOffset(protocol.Version311); off != -1 {
		t.Fatalf("PacketIDOffset at QoS 0 = %d, want -1", off)
	}
}

func TestPublishV311IgnoresProperties(t *testing.T) {
	pub := protocol.Publish{Topic: []byte("t"), QoS: 1, PacketID: 1, Payload: []byte("x"),
		Props: protocol.Properties{SubscriptionIDs: []int{1, 2}, User: []protocol.UserProperty{{Key: []byte("k")}}}}
	b, err := pub.Append(nil, protocol.Version311)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x32, 0x06, 0x00, 0x01, 't', 0x00, 0x01, 'x'}; !bytes.Equal(b, want) {
		t.Fatalf("got % x, want % x", b, want)
	}
}

// bigPublishes are packets whose Remaining Length takes two and three bytes,
// so that PacketIDOffset is tested beyond one-byte headers.
func bigPublishes() []protocol.Publish {
	var out []protocol.Publish
	for _, size := range []int{200, 20_000, 3_000_000} {
		p := protocol.Publish{Topic: bytes.Repeat([]byte("t"), 300), Payload: make([]byte, size), QoS: 2, PacketID: 77}
		p.Props.User = []protocol.UserProperty{{Key: []byte("k"), Value: []byte("v")}}
		out = append(out, p)
	}
	return out
}

func TestPublishPacketIDOffset(t *testing.T) {
	check := func(t *testing.T, pub *protocol.Publish, v protocol.Version) {
		t.Helper()
		off := pub.PacketIDOffset(v)
		if pub.QoS == 0 {
			if off != -1 {
				t.Fatalf("PacketIDOffset = %d at QoS 0", off)
			}
			return
		}
		enc, err := pub.Append(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		if got := uint16(enc[off])<<8 | uint16(enc[off+1]); got != pub.PacketID {
			t.Fatalf("bytes at offset %d = %#x, want packet id %#x", off, got, pub.PacketID)
		}
		// Fan-out: one encoding, a copy per subscriber, each patched.
		for _, id := range []uint16{1, 0xBEEF, 0xFFFF} {
			cp := bytes.Clone(enc)
			protocol.PatchPacketID(cp, off, id)
			h, body := parse(t, cp)
			var got protocol.Publish
			if err := got.Decode(h, body, v); err != nil {
				t.Fatalf("decode patched: %v", err)
			}
			want := *pub
			want.PacketID = id
			if v < protocol.Version5 {
				want.Props = protocol.Properties{} // not on the wire
			}
			// cmp walks byte slices element by element: compare the
			// (megabyte) payload directly.
			if !bytes.Equal(got.Payload, want.Payload) {
				t.Fatal("patched packet: payload differs")
			}
			got.Payload, want.Payload = nil, nil
			if d := cmp.Diff(&want, &got, packetCmp...); d != "" {
				t.Fatalf("patched packet (-want +got):\n%s", d)
			}
		}
		head, err := pub.AppendHeaderOnly(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		if off+2 > len(head) {
			t.Fatalf("offset %d beyond the %d-byte head", off, len(head))
		}
	}
	for _, c := range publishFixtures() {
		t.Run(c.Name, func(t *testing.T) { check(t, c.Packet.(*protocol.Publish), c.Version) })
	}
	for _, pub := range bigPublishes() {
		for _, v := range []protocol.Version{protocol.Version311, protocol.Version5} {
			t.Run(fmt.Sprintf("%s %d", v, len(pub.Payload)), func(t *testing.T) { check(t, &pub, v) })
		}
	}
}

func TestPublishAppendHeaderOnly(t *testing.T) {
	check := func(t *testing.T, pub *protocol.Publish, v protocol.Version) {
		t.Helper()
		full, err := pub.Append([]byte{0xAA}, v)
		if err != nil {
			t.Fatal(err)
		}
		head, err := pub.AppendHeaderOnly([]byte{0xAA}, v)
		if err != nil {
			t.Fatal(err)
		}
		if len(head)-1 != pub.Len(v)-len(pub.Payload) {
			t.Fatalf("head is %d bytes, want Len-len(Payload) = %d", len(head)-1, pub.Len(v)-len(pub.Payload))
		}
		if !bytes.Equal(append(head, pub.Payload...), full) {
			t.Fatal("head + payload differs from Append")
		}
	}
	for _, c := range publishFixtures() {
		t.Run(c.Name, func(t *testing.T) { check(t, c.Packet.(*protocol.Publish), c.Version) })
	}
	for _, pub := range bigPublishes() {
		t.Run(fmt.Sprint(len(pub.Payload)), func(t *testing.T) { check(t, &pub, protocol.Version5) })
	}
}

func TestPublishCheckFromClient(t *testing.T) {
	withIDs := []byte{
		0x30, 0x07, 0x00, 0x01, 't',
		0x02, 0x0B, 0x01, // Subscription Identifier 1
		'x',
	}
	var pub protocol.Publish
	h, body := parse(t, withIDs)
	if err := pub.Decode(h, body, protocol.Version5); err != nil {
		t.Fatalf("a server's PUBLISH with a Subscription Identifier must decode: %v", err)
	}
	wantReason(t, pub.CheckFromClient(), protocol.ReasonProtocolError) // [MQTT-3.3.4-6]

	without := []byte{0x30, 0x05, 0x00, 0x01, 't', 0x00, 'x'}
	h, body = parse(t, without)
	if err := pub.Decode(h, body, protocol.Version5); err != nil {
		t.Fatal(err)
	}
	if err := pub.CheckFromClient(); err != nil {
		t.Fatalf("CheckFromClient: %v", err)
	}
}

func TestPublishValidPayloadFormat(t *testing.T) {
	utf8Format := func(f byte) protocol.Properties {
		var p protocol.Properties
		p.PayloadFormat = f
		p.Set(protocol.PropPayloadFormat)
		return p
	}
	for _, tc := range []struct {
		name    string
		props   protocol.Properties
		payload []byte
		want    bool
	}{
		{"no indicator, invalid utf-8", protocol.Properties{}, []byte{0xFF}, true},
		{"indicator 0, invalid utf-8", utf8Format(0), []byte{0xFF}, true},
		{"indicator 1, utf-8", utf8Format(1), []byte("h\u00e9llo"), true},
		{"indicator 1, U+0000 allowed in a payload", utf8Format(1), []byte("a\x00b"), true},
		{"indicator 1, empty", utf8Format(1), nil, true},
		{"indicator 1, ill-formed", utf8Format(1), []byte{'a', 0xC0, 0xAF}, false},
		{"indicator 1, surrogate", utf8Format(1), []byte{0xED, 0xA0, 0x80}, false},
	} {
		pub := protocol.Publish{Topic: []byte("t"), Payload: tc.payload, Props: tc.props}
		if got := pub.ValidPayloadFormat(); got != tc.want {
			t.Errorf("%s: ValidPayloadFormat = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestPublishDecodeOverwrites decodes different packets into one value: no
// field of an earlier packet may survive.
func TestPublishDecodeOverwrites(t *testing.T) {
	var pub protocol.Publish
	cases := publishFixtures()
	for i := 0; i < 2*len(cases); i++ {
		c := cases[(i*7)%len(cases)]
		h, body := parse(t, c.Raw)
		if err := pub.Decode(h, body, c.Version); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		if d := cmp.Diff(c.Packet, &pub, packetCmp...); d != "" {
			t.Fatalf("%s after reuse (-want +got):\n%s", c.Name, d)
		}
	}
}

// benchPublish returns a PUBLISH with a payload of size bytes; for v5 it
// carries a couple of properties, as forwarded messages often do.
func benchPublish(size int, v protocol.Version) *protocol.Publish {
	pub := &protocol.Publish{
		Topic:    []byte("sensors/building-7/floor-3/room-12/temperature"),
		Payload:  bytes.Repeat([]byte{'x'}, size),
		QoS:      1,
		PacketID: 4242,
	}
	if v >= protocol.Version5 {
		pub.Props.MessageExpiry = 3600
		pub.Props.Set(protocol.PropMessageExpiry)
		pub.Props.ContentType = []byte("application/json")
		pub.Props.Set(protocol.PropContentType)
		pub.Props.User = []protocol.UserProperty{{Key: []byte("trace"), Value: []byte("abc123")}}
	}
	return pub
}

func TestPublishAllocs(t *testing.T) {
	for _, v := range []protocol.Version{protocol.Version311, protocol.Version5} {
		pub := benchPublish(64, v)
		if v >= protocol.Version5 {
			pub.Props.SubscriptionIDs = []int{3, 70000} // as a server sends them
		}
		buf := make([]byte, 0, pub.Len(v))
		if n := testing.AllocsPerRun(100, func() {
			var err error
			if buf, err = pub.Append(buf[:0], v); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: Append into a large enough buffer: %v allocs, want 0", v, n)
		}
		if n := testing.AllocsPerRun(100, func() {
			if _, err := pub.AppendHeaderOnly(buf[:0], v); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: AppendHeaderOnly: %v allocs, want 0", v, n)
		}
		h, body := parse(t, buf)
		var dst protocol.Publish
		if err := dst.Decode(h, body, v); err != nil { // warm-up: Props' slices grow once
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(100, func() {
			if err := dst.Decode(h, body, v); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: Decode into a reused Publish: %v allocs, want 0", v, n)
		}
		if n := testing.AllocsPerRun(100, func() {
			_ = dst.PacketIDOffset(v)
			_ = dst.ValidPayloadFormat()
		}); n != 0 {
			t.Errorf("%s: PacketIDOffset/ValidPayloadFormat: %v allocs, want 0", v, n)
		}
	}
}

var benchSizes = []struct {
	name string
	size int
}{{"64B", 64}, {"4KiB", 4096}}

var benchVersions = []protocol.Version{protocol.Version311, protocol.Version5}

func BenchmarkPublishEncode(b *testing.B) {
	for _, v := range benchVersions {
		for _, s := range benchSizes {
			b.Run(fmt.Sprintf("v%s/%s", v, s.name), func(b *testing.B) {
				pub := benchPublish(s.size, v)
				buf := make([]byte, 0, pub.Len(v))
				b.SetBytes(int64(pub.Len(v)))
				b.ReportAllocs()
				for b.Loop() {
					var err error
					if buf, err = pub.Append(buf[:0], v); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkPublishDecode(b *testing.B) {
	for _, v := range benchVersions {
		for _, s := range benchSizes {
			b.Run(fmt.Sprintf("v%s/%s", v, s.name), func(b *testing.B) {
				raw, err := benchPublish(s.size, v).Append(nil, v)
				if err != nil {
					b.Fatal(err)
				}
				h, body := parse(b, raw)
				var pub protocol.Publish
				b.SetBytes(int64(len(raw)))
				b.ReportAllocs()
				for b.Loop() {
					if err := pub.Decode(h, body, v); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPublishFanout is the broker's per-subscriber cost with the
// encode-once scheme: copy the shared encoding into the subscriber's buffer
// and patch its packet identifier.
func BenchmarkPublishFanout(b *testing.B) {
	for _, s := range benchSizes {
		b.Run(s.name, func(b *testing.B) {
			pub := benchPublish(s.size, protocol.Version5)
			enc, err := pub.Append(nil, protocol.Version5)
			if err != nil {
				b.Fatal(err)
			}
			off := pub.PacketIDOffset(protocol.Version5)
			dst := make([]byte, 0, len(enc))
			var id uint16
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				id++
				if id == 0 {
					id = 1
				}
				dst = append(dst[:0], enc...)
				protocol.PatchPacketID(dst, off, id)
			}
		})
	}
}
