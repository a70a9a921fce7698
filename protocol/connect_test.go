package protocol_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/protocol/fixture"
)

// fixtureRaw returns the bytes of the named fixture.
func fixtureRaw(t testing.TB, name string) []byte {
	t.Helper()
	for _, c := range fixture.All() {
		if c.Name == name {
			return c.Raw
		}
	}
	t.Fatalf("no fixture %q", name)
	return nil
}

// splitPacket parses the fixed header of a whole packet.
func splitPacket(t testing.TB, raw []byte) (protocol.Header, []byte) {
	t.Helper()
	h, n, err := protocol.ParseHeader(raw)
	if err != nil {
		t.Fatal(err)
	}
	return h, raw[n:]
}

// checkRefused asserts that Append failed with reason want and left b as it
// was.
func checkRefused(t *testing.T, pk protocol.Packet, v protocol.Version, want protocol.ReasonCode) {
	t.Helper()
	buf := make([]byte, 3, 64)
	copy(buf, "abc")
	got, err := pk.Append(buf, v)
	if !errors.Is(err, want) {
		t.Fatalf("Append: err %v, want reason %v", err, want)
	}
	if !bytes.Equal(got, []byte("abc")) {
		t.Fatalf("Append changed b on error: %q", got)
	}
}

func TestConnectAppendRefusesLongFields(t *testing.T) {
	long := bytes.Repeat([]byte("x"), 70_000)
	base := func() *protocol.Connect {
		return &protocol.Connect{Level: protocol.Version5, ClientID: []byte("c"),
			WillFlag: true, Will: protocol.Will{Topic: []byte("w"), Payload: []byte("p")},
			UsernameFlag: true, Username: []byte("u"), PasswordFlag: true, Password: []byte("pw")}
	}
	for _, tt := range []struct {
		name string
		set  func(*protocol.Connect)
	}{
		{"client id", func(c *protocol.Connect) { c.ClientID = long }},
		{"will topic", func(c *protocol.Connect) { c.Will.Topic = long }},
		{"will payload", func(c *protocol.Connect) { c.Will.Payload = long }},
		{"user name", func(c *protocol.Connect) { c.Username = long }},
		{"password", func(c *protocol.Connect) { c.Password = long }},
		{"user property", func(c *protocol.Connect) {
			c.Props.User = []protocol.UserProperty{{Key: []byte("k"), Value: long}}
		}},
	} {
		for _, lvl := range []protocol.Version{protocol.Version31, protocol.Version311, protocol.Version5} {
			t.Run(tt.name+" "+lvl.String(), func(t *testing.T) {
				c := base()
				c.Level = lvl
				tt.set(c)
				if lvl < protocol.Version5 && tt.name == "user property" {
					return // properties are not written below v5
				}
				checkRefused(t, c, lvl, protocol.ReasonMalformedPacket)
			})
		}
	}
	// The same fields at exactly 65535 bytes encode and decode.
	c := base()
	c.ClientID = long[:65_535]
	b, err := c.Append(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got protocol.Connect
	h, body := splitPacket(t, b)
	if err := got.Decode(h, body, 0); err != nil {
		t.Fatal(err)
	}
	if len(got.ClientID) != 65_535 {
		t.Fatalf("client id %d bytes", len(got.ClientID))
	}
}

func TestConnectAppendRefusesInvalid(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    protocol.Connect
		want protocol.ReasonCode
	}{
		{"level 0", protocol.Connect{}, protocol.ReasonUnsupportedProtocolVersion},
		{"level 6", protocol.Connect{Level: 6}, protocol.ReasonUnsupportedProtocolVersion},
		{"bridge at level 5", protocol.Connect{Level: protocol.Version5, Bridge: true}, protocol.ReasonUnsupportedProtocolVersion},
		{"will qos 3", protocol.Connect{Level: protocol.Version311, WillFlag: true,
			Will: protocol.Will{QoS: 3, Topic: []byte("t")}}, protocol.ReasonMalformedPacket},
		{"v311 password without user name", protocol.Connect{Level: protocol.Version311,
			PasswordFlag: true, Password: []byte("p")}, protocol.ReasonMalformedPacket},
		{"v31 password without user name", protocol.Connect{Level: protocol.Version31, ClientID: []byte("c"),
			PasswordFlag: true, Password: []byte("p")}, protocol.ReasonMalformedPacket},
		{"connect property not allowed", protocol.Connect{Level: protocol.Version5, Props: withProp(protocol.PropTopicAlias,
			func(p *protocol.Properties) { p.TopicAlias = 1 })}, protocol.ReasonMalformedPacket},
		{"receive maximum 0", protocol.Connect{Level: protocol.Version5, Props: withProp(protocol.PropReceiveMaximum,
			func(p *protocol.Properties) {})}, protocol.ReasonProtocolError},
		{"will property not allowed", protocol.Connect{Level: protocol.Version5, WillFlag: true,
			Will: protocol.Will{Topic: []byte("t"), Props: withProp(protocol.PropSessionExpiry,
				func(p *protocol.Properties) { p.SessionExpiry = 1 })}}, protocol.ReasonMalformedPacket},
	} {
		t.Run(tt.name, func(t *testing.T) { checkRefused(t, &tt.c, 0, tt.want) })
	}
	// v5 allows a password without a user name.
	c := protocol.Connect{Level: protocol.Version5, PasswordFlag: true, Password: []byte("p")}
	if _, err := c.Append(nil, 0); err != nil {
		t.Fatalf("v5 password without user name: %v", err)
	}
}

func withProp(id protocol.PropID, f func(*protocol.Properties)) protocol.Properties {
	var p protocol.Properties
	f(&p)
	p.Set(id)
	return p
}

// TestConnectDecodeLevel checks that Level survives a failed decode, so the
// broker answers in the client's format.
func TestConnectDecodeLevel(t *testing.T) {
	for _, tt := range []struct {
		fixture string
		level   protocol.Version
		ack     protocol.Version
		want    protocol.ReasonCode // 0: success
	}{
		{"connect v31 user and password", protocol.Version31, protocol.Version31, 0},
		{"connect v311 minimal", protocol.Version311, protocol.Version311, 0},
		{"connect v5 minimal", protocol.Version5, protocol.Version5, 0},
		{"connect name MQTT with level 3", protocol.Version31, protocol.Version31, protocol.ReasonUnsupportedProtocolVersion},
		{"connect name MQIsdp with level 4", protocol.Version311, protocol.Version311, protocol.ReasonUnsupportedProtocolVersion},
		{"connect level 6", 6, protocol.Version311, protocol.ReasonUnsupportedProtocolVersion},
		{"connect level 5 with bridge bit", 0x85, protocol.Version311, protocol.ReasonUnsupportedProtocolVersion},
		{"connect protocol name MQTX", protocol.Version311, protocol.Version311, protocol.ReasonUnsupportedProtocolVersion},
		{"connect lowercase protocol name", protocol.Version5, protocol.Version5, protocol.ReasonUnsupportedProtocolVersion},
		{"connect truncated before level", 0, protocol.Version311, protocol.ReasonMalformedPacket},
		{"connect v5 reserved flag", protocol.Version5, protocol.Version5, protocol.ReasonMalformedPacket},
		{"connect v5 session expiry twice", protocol.Version5, protocol.Version5, protocol.ReasonProtocolError},
		{"connect v5 will topic with wildcard", protocol.Version5, protocol.Version5, protocol.ReasonTopicNameInvalid},
		{"connect v311 empty client id without clean session", protocol.Version311, protocol.Version311, protocol.ReasonClientIdentifierNotValid},
	} {
		t.Run(tt.fixture, func(t *testing.T) {
			h, body := splitPacket(t, fixtureRaw(t, tt.fixture))
			// A reused value holding another connection's CONNECT.
			c := decodeAllProps(t)
			err := c.Decode(h, body, protocol.Version5)
			if tt.want == 0 && err != nil || tt.want != 0 && !errors.Is(err, tt.want) {
				t.Fatalf("Decode: %v, want reason %v", err, tt.want)
			}
			if c.Level != tt.level {
				t.Errorf("Level = %d, want %d", c.Level, tt.level)
			}
			if got := c.AckVersion(); got != tt.ack {
				t.Errorf("AckVersion = %v, want %v", got, tt.ack)
			}
		})
	}
}

func TestConnectErrorText(t *testing.T) {
	var c protocol.Connect
	h, body := splitPacket(t, fixtureRaw(t, "connect v311 will qos 3"))
	err := c.Decode(h, body, 0)
	if err == nil || err.Error() != "decode connect: will qos 3: malformed packet" {
		t.Fatalf("got %v", err)
	}
}

func decodeAllProps(t testing.TB) *protocol.Connect {
	t.Helper()
	var c protocol.Connect
	h, body := splitPacket(t, fixtureRaw(t, "connect v5 every property"))
	if err := c.Decode(h, body, 0); err != nil {
		t.Fatal(err)
	}
	return &c
}

// TestConnectDecodeReuse checks that decoding into a value that held a
// bigger packet leaves nothing of it behind.
func TestConnectDecodeReuse(t *testing.T) {
	for _, c := range fixture.Valid() {
		want, ok := c.Packet.(*protocol.Connect)
		if !ok {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			got := decodeAllProps(t)
			got.Bridge, got.Level = true, 0x7F // the only fields the fixture leaves unset or small
			h, body := splitPacket(t, c.Raw)
			if err := got.Decode(h, body, c.Version); err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got, packetCmp...); d != "" {
				t.Fatalf("(-want +got):\n%s", d)
			}
		})
	}
}

// TestConnectLenMatchesAppend encodes every combination of the optional
// parts at every level and checks Len, the round trip and the flags.
func TestConnectLenMatchesAppend(t *testing.T) {
	for _, lvl := range []protocol.Version{protocol.Version31, protocol.Version311, protocol.Version5} {
		for mask := 0; mask < 1<<6; mask++ {
			c := &protocol.Connect{Level: lvl, KeepAlive: uint16(mask), ClientID: []byte("client"),
				CleanStart: mask&1 != 0, Bridge: mask&32 != 0 && lvl < protocol.Version5}
			if mask&2 != 0 {
				c.WillFlag = true
				c.Will = protocol.Will{QoS: byte(mask % 3), Retain: mask&8 != 0, Topic: []byte("a/b"), Payload: []byte{0, 1, 2}}
				if lvl == protocol.Version5 {
					c.Will.Props = withProp(protocol.PropWillDelay, func(p *protocol.Properties) { p.WillDelay = 5 })
				}
			}
			if mask&4 != 0 {
				c.UsernameFlag, c.Username = true, []byte("user")
			}
			if mask&16 != 0 && (c.UsernameFlag || lvl == protocol.Version5) {
				c.PasswordFlag, c.Password = true, []byte{0xFF}
			}
			if lvl == protocol.Version5 && mask&8 != 0 {
				c.Props = withProp(protocol.PropSessionExpiry, func(p *protocol.Properties) { p.SessionExpiry = 9 })
			}
			b, err := c.Append([]byte{0xAA}, 0)
			if err != nil {
				t.Fatalf("%v mask %#x: %v", lvl, mask, err)
			}
			if len(b)-1 != c.Len(0) {
				t.Fatalf("%v mask %#x: wrote %d bytes, Len %d", lvl, mask, len(b)-1, c.Len(0))
			}
			var got protocol.Connect
			h, body := splitPacket(t, b[1:])
			if err := got.Decode(h, body, 0); err != nil {
				t.Fatalf("%v mask %#x: %v", lvl, mask, err)
			}
			if d := cmp.Diff(c, &got, packetCmp...); d != "" {
				t.Fatalf("%v mask %#x (-want +got):\n%s", lvl, mask, d)
			}
		}
	}
}

func TestConnackAppend(t *testing.T) {
	for _, tt := range []struct {
		name string
		c    protocol.Connack
		v    protocol.Version
		raw  []byte              // want; nil when Append must fail
		err  protocol.ReasonCode // the failure's reason
	}{
		{"v311 server busy maps to 3", protocol.Connack{Reason: protocol.ReasonServerBusy}, protocol.Version311,
			[]byte{0x20, 0x02, 0x00, 0x03}, 0},
		{"v311 banned maps to 5", protocol.Connack{Reason: protocol.ReasonBanned}, protocol.Version311,
			[]byte{0x20, 0x02, 0x00, 0x05}, 0},
		{"v311 properties ignored", protocol.Connack{Props: withProp(protocol.PropReasonString,
			func(p *protocol.Properties) { p.ReasonString = []byte("x") })}, protocol.Version311,
			[]byte{0x20, 0x02, 0x00, 0x00}, 0},
		{"v31 session present not written", protocol.Connack{SessionPresent: true}, protocol.Version31,
			[]byte{0x20, 0x02, 0x00, 0x00}, 0},
		{"v311 malformed has no return code", protocol.Connack{Reason: protocol.ReasonMalformedPacket}, protocol.Version311,
			nil, protocol.ReasonProtocolError},
		{"v311 session present with refusal", protocol.Connack{SessionPresent: true, Reason: protocol.ReasonNotAuthorized},
			protocol.Version311, nil, protocol.ReasonProtocolError},
		{"v5 session present with refusal", protocol.Connack{SessionPresent: true, Reason: protocol.ReasonBanned},
			protocol.Version5, nil, protocol.ReasonProtocolError},
		{"v5 reason not a connect reason", protocol.Connack{Reason: protocol.ReasonSessionTakenOver},
			protocol.Version5, nil, protocol.ReasonProtocolError},
		{"v5 property not allowed", protocol.Connack{Props: withProp(protocol.PropWillDelay,
			func(p *protocol.Properties) { p.WillDelay = 1 })}, protocol.Version5, nil, protocol.ReasonMalformedPacket},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.raw == nil {
				checkRefused(t, &tt.c, tt.v, tt.err)
				return
			}
			b, err := tt.c.Append(nil, tt.v)
			if err != nil || !bytes.Equal(b, tt.raw) {
				t.Fatalf("Append = %x, %v; want %x", b, err, tt.raw)
			}
			if n := tt.c.Len(tt.v); n != len(b) {
				t.Fatalf("Len %d, wrote %d", n, len(b))
			}
		})
	}
	// Every reason with a 3.1.1 code encodes; the code decodes back to a
	// reason with the same code.
	for r := 0; r < 256; r++ {
		rc := protocol.ReasonCode(r)
		code, ok := protocol.ConnackCodeFor(rc)
		if !ok {
			continue
		}
		b, err := (&protocol.Connack{Reason: rc}).Append(nil, protocol.Version311)
		if err != nil {
			t.Fatalf("reason %v: %v", rc, err)
		}
		var got protocol.Connack
		h, body := splitPacket(t, b)
		if err := got.Decode(h, body, protocol.Version311); err != nil {
			t.Fatalf("reason %v: %v", rc, err)
		}
		if back, _ := protocol.ConnackCodeFor(got.Reason); back != code {
			t.Fatalf("reason %v: code %d decodes to %v (code %d)", rc, code, got.Reason, back)
		}
	}
}

func TestDisconnectAppend(t *testing.T) {
	reason := withProp(protocol.PropReasonString, func(p *protocol.Properties) { p.ReasonString = []byte("r") })
	for _, tt := range []struct {
		name string
		d    protocol.Disconnect
		v    protocol.Version
		raw  []byte
	}{
		{"v5 normal", protocol.Disconnect{}, protocol.Version5, []byte{0xE0, 0x00}},
		{"v5 reason only", protocol.Disconnect{Reason: protocol.ReasonServerShuttingDown}, protocol.Version5,
			[]byte{0xE0, 0x01, 0x8B}},
		{"v5 normal with properties", protocol.Disconnect{Props: reason}, protocol.Version5,
			[]byte{0xE0, 0x06, 0x00, 0x04, 0x1F, 0x00, 0x01, 'r'}},
		{"v311 ignores reason and properties", protocol.Disconnect{Reason: protocol.ReasonProtocolError, Props: reason},
			protocol.Version311, []byte{0xE0, 0x00}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.d.Append(nil, tt.v)
			if err != nil || !bytes.Equal(b, tt.raw) {
				t.Fatalf("Append = %x, %v; want %x", b, err, tt.raw)
			}
			if n := tt.d.Len(tt.v); n != len(b) {
				t.Fatalf("Len %d, wrote %d", n, len(b))
			}
		})
	}
	checkRefused(t, &protocol.Disconnect{Reason: protocol.ReasonGrantedQoS1}, protocol.Version5, protocol.ReasonProtocolError)
	checkRefused(t, &protocol.Disconnect{Props: withProp(protocol.PropReceiveMaximum,
		func(p *protocol.Properties) { p.ReceiveMaximum = 1 })}, protocol.Version5, protocol.ReasonMalformedPacket)
}

func TestAuthAppend(t *testing.T) {
	method := withProp(protocol.PropAuthMethod, func(p *protocol.Properties) { p.AuthMethod = []byte("m") })
	checkRefused(t, &protocol.Auth{}, protocol.Version311, protocol.ReasonMalformedPacket)
	checkRefused(t, &protocol.Auth{Props: method}, protocol.Version31, protocol.ReasonMalformedPacket)
	checkRefused(t, &protocol.Auth{Reason: protocol.ReasonNotAuthorized, Props: method}, protocol.Version5, protocol.ReasonProtocolError)
	checkRefused(t, &protocol.Auth{Reason: protocol.ReasonContinueAuthentication}, protocol.Version5, protocol.ReasonProtocolError)
	checkRefused(t, &protocol.Auth{Props: withProp(protocol.PropReasonString,
		func(p *protocol.Properties) { p.ReasonString = []byte("r") })}, protocol.Version5, protocol.ReasonProtocolError)
	b, err := (&protocol.Auth{Reason: protocol.ReasonContinueAuthentication, Props: method}).Append(nil, protocol.Version5)
	if want := []byte{0xF0, 0x06, 0x18, 0x04, 0x15, 0x00, 0x01, 'm'}; err != nil || !bytes.Equal(b, want) {
		t.Fatalf("Append = %x, %v; want %x", b, err, want)
	}
}

// TestConnectAllocs keeps decoding into reused values and encoding into a
// buffer with room allocation-free.
func TestConnectAllocs(t *testing.T) {
	for _, name := range []string{
		"connect v5 every property", "connect v311 will user password", "connect v31 will",
		"connack v5 every property", "connack v311 session present",
		"disconnect v5 client with properties", "disconnect v311",
		"auth v5 re-authenticate", "auth v5 short form",
	} {
		t.Run(name, func(t *testing.T) {
			var c fixture.Case
			for _, x := range fixture.Valid() {
				if x.Name == name {
					c = x
				}
			}
			h, body := splitPacket(t, c.Raw)
			pk := protocol.New(h.Type)
			if err := pk.Decode(h, body, c.Version); err != nil { // warm up: size the slices
				t.Fatal(err)
			}
			if n := testing.AllocsPerRun(100, func() {
				if err := pk.Decode(h, body, c.Version); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("Decode: %v allocs, want 0", n)
			}
			buf := make([]byte, 0, 512)
			if n := testing.AllocsPerRun(100, func() {
				if _, err := pk.Append(buf[:0], c.Version); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("Append: %v allocs, want 0", n)
			}
		})
	}
}

// typicalConnect5 is a v5 CONNECT as an IoT client sends it: persistent
// session, credentials, a few limits, a will with a delay.
func typicalConnect5() *protocol.Connect {
	c := &protocol.Connect{Level: protocol.Version5, KeepAlive: 60, ClientID: []byte("sensor-7f3a9c2e-0042"),
		WillFlag: true, Will: protocol.Will{QoS: 1, Topic: []byte("devices/sensor-0042/status"), Payload: []byte("offline")},
		UsernameFlag: true, Username: []byte("device-0042"), PasswordFlag: true, Password: []byte("s3cr3t-t0k3n-value")}
	c.Props.SessionExpiry, c.Props.ReceiveMaximum, c.Props.TopicAliasMaximum, c.Props.MaximumPacketSize = 3600, 32, 16, 1<<20
	for _, id := range []protocol.PropID{protocol.PropSessionExpiry, protocol.PropReceiveMaximum,
		protocol.PropTopicAliasMaximum, protocol.PropMaximumPacketSize} {
		c.Props.Set(id)
	}
	c.Will.Props.WillDelay = 30
	c.Will.Props.Set(protocol.PropWillDelay)
	return c
}

func typicalConnect311() *protocol.Connect {
	return &protocol.Connect{Level: protocol.Version311, CleanStart: true, KeepAlive: 60,
		ClientID: []byte("sensor-7f3a9c2e-0042"),
		WillFlag: true, Will: protocol.Will{QoS: 1, Topic: []byte("devices/sensor-0042/status"), Payload: []byte("offline")},
		UsernameFlag: true, Username: []byte("device-0042"), PasswordFlag: true, Password: []byte("s3cr3t-t0k3n-value")}
}

func benchConnects() []struct {
	name string
	c    *protocol.Connect
} {
	return []struct {
		name string
		c    *protocol.Connect
	}{{"v5", typicalConnect5()}, {"v311", typicalConnect311()}}
}

func BenchmarkConnectEncode(b *testing.B) {
	for _, bc := range benchConnects() {
		b.Run(bc.name, func(b *testing.B) {
			buf := make([]byte, 0, bc.c.Len(0))
			b.SetBytes(int64(bc.c.Len(0)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = bc.c.Append(buf[:0], 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkConnectDecode(b *testing.B) {
	for _, bc := range benchConnects() {
		b.Run(bc.name, func(b *testing.B) {
			raw, err := bc.c.Append(nil, 0)
			if err != nil {
				b.Fatal(err)
			}
			h, body := splitPacket(b, raw)
			var c protocol.Connect
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Decode(h, body, 0); err != nil {
					b.Fatal(err)
				}
			}
			if !bytes.Equal(c.ClientID, bc.c.ClientID) {
				b.Fatal("decoded the wrong client id")
			}
		})
	}
}
