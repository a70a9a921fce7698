package integration

import (
	"bytes"
	"testing"
	"time"

	"github.com/nanoactor/nanoactor/protocol"
)

// TestBadInput sends hostile or broken input on raw sockets, one case per
// subtest, and checks the exact reaction: a v5 CONNACK or DISCONNECT with
// the reason code the standard gives, then the close [MQTT-4.13.1-1]
// [MQTT-3.2.2-7] [MQTT-4.13.2-1]; or a bare close where there is no
// CONNACK to answer with yet [MQTT-3.14.0-1]. Each case must produce
// exactly one log line naming the client's address and the reason, and a
// healthy client connected all along must keep being served.
func TestBadInput(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "[mqtt]\nconnect_timeout = \"500ms\"\n")
	by := newRawBystander(t, b)
	connected := func(t *testing.T, id string) *rawConn {
		c, _ := rawConnect(t, b, id, nil)
		return c
	}
	v5 := func(t *testing.T) *rawConn { return rawDial(t, b, protocol.Version5) }

	for _, tc := range []struct {
		name string
		log  string // in the one log line, besides the address
		run  func(t *testing.T) *rawConn
	}{
		{"first packet not CONNECT", "protocol error", func(t *testing.T) *rawConn {
			// [MQTT-3.1.0-1]: no CONNACK yet, so no DISCONNECT either
			// [MQTT-3.14.0-1]: just the close.
			c := v5(t)
			c.write([]byte{0xC0, 0x00}) // PINGREQ
			c.expectClosed()
			return c
		}},
		{"second CONNECT", "protocol error", func(t *testing.T) *rawConn {
			// [MQTT-3.1.0-2] a second CONNECT is a Protocol Error.
			c := connected(t, "twice")
			c.send(&protocol.Connect{Level: protocol.Version5, CleanStart: true, ClientID: []byte("twice")})
			c.expectDisconnect(protocol.ReasonProtocolError)
			return c
		}},
		{"reserved flags in SUBSCRIBE fixed header", "malformed packet", func(t *testing.T) *rawConn {
			// [MQTT-2.1.3-1] [MQTT-3.8.1-1] SUBSCRIBE flags must be 0010.
			c := connected(t, "flags")
			c.write(rawPacket(0x80, // SUBSCRIBE with flags 0000
				[]byte{0x00, 0x01}, // packet id 1
				rawProps(),         // no properties
				rawStr("a"), []byte{0x01}))
			c.expectDisconnect(protocol.ReasonMalformedPacket)
			return c
		}},
		{"reserved flags in PUBREL fixed header", "malformed packet", func(t *testing.T) *rawConn {
			// [MQTT-3.6.1-1] PUBREL flags must be 0010.
			c := connected(t, "pubrel-flags")
			c.write([]byte{0x60, 0x02, 0x00, 0x01}) // PUBREL flags 0000, packet id 1
			c.expectDisconnect(protocol.ReasonMalformedPacket)
			return c
		}},
		{"PUBLISH QoS 3", "malformed packet", func(t *testing.T) *rawConn {
			// [MQTT-3.3.1-4] both QoS bits set is malformed.
			c := connected(t, "qos3")
			c.write(rawPacket(0x36, // PUBLISH QoS 3
				rawStr("t"), []byte{0x00, 0x01}, rawProps(), []byte("x")))
			c.expectDisconnect(protocol.ReasonMalformedPacket)
			return c
		}},
		{"remaining length of five bytes", "malformed packet", func(t *testing.T) *rawConn {
			// 1.5.5: a Variable Byte Integer has at most four bytes; more is
			// malformed. DISCONNECT 0x81 (or a bare close) is the answer.
			c := connected(t, "varint")
			c.write([]byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01})
			rawClosedMaybeDisconnect(t, c, protocol.ReasonMalformedPacket)
			return c
		}},
		{"U+0000 in a topic name", "malformed packet", func(t *testing.T) *rawConn {
			// [MQTT-1.5.4-2] [MQTT-4.7.3-2] U+0000 in a UTF-8 string is malformed.
			c := connected(t, "nul")
			c.write(rawPacket(0x30, rawStr("a\x00b"), rawProps(), []byte("x")))
			c.expectDisconnect(protocol.ReasonMalformedPacket)
			return c
		}},
		{"wildcard in a PUBLISH topic", "topic name invalid", func(t *testing.T) *rawConn {
			// [MQTT-3.3.2-2] [MQTT-4.7.0-1]: 0x90 Topic Name invalid.
			c := connected(t, "wild")
			c.write(rawPacket(0x32, rawStr("a/+"), []byte{0x00, 0x01}, rawProps(), []byte("x")))
			c.expectDisconnect(protocol.ReasonTopicNameInvalid)
			return c
		}},
		{"packet id 0 on a QoS 1 PUBLISH", "protocol error", func(t *testing.T) *rawConn {
			// [MQTT-2.2.1-3] a QoS 1 PUBLISH needs a non-zero packet id. The
			// packet parses, so this is a Protocol Error (4.13), not malformed.
			c := connected(t, "id0")
			c.write(rawPacket(0x32, rawStr("t"), []byte{0x00, 0x00}, rawProps(), []byte("x")))
			c.expectDisconnect(protocol.ReasonProtocolError)
			return c
		}},
		{"SUBSCRIBE without filters", "protocol error", func(t *testing.T) *rawConn {
			// [MQTT-3.8.3-2] at least one filter; "A SUBSCRIBE packet with no
			// Payload is a Protocol Error" (3.8.3).
			c := connected(t, "nofilter")
			c.write(rawPacket(0x82, []byte{0x00, 0x01}, rawProps()))
			c.expectDisconnect(protocol.ReasonProtocolError)
			return c
		}},
		{"subscription options reserved bits", "malformed packet", func(t *testing.T) *rawConn {
			// [MQTT-3.8.3-5] bits 6 and 7 of the options are reserved.
			c := connected(t, "options")
			c.write(rawPacket(0x82, []byte{0x00, 0x01}, rawProps(), rawStr("a"), []byte{0xC1}))
			c.expectDisconnect(protocol.ReasonMalformedPacket)
			return c
		}},
		{"Subscription Identifier in a client PUBLISH", "protocol error", func(t *testing.T) *rawConn {
			// [MQTT-3.3.4-6] a client's PUBLISH carries none.
			c := connected(t, "pubsubid")
			c.write(rawPacket(0x30, rawStr("t"), rawProps(0x0B, 0x05), []byte("x")))
			c.expectDisconnect(protocol.ReasonProtocolError)
			return c
		}},
		{"AUTH without an authentication method in CONNECT", "protocol error", func(t *testing.T) *rawConn {
			// [MQTT-4.12.0-7] such a client must not send AUTH.
			c := connected(t, "auth")
			c.write(rawPacket(0xF0, []byte{0x19}, rawProps(0x15, 0x00, 0x01, 'x')))
			c.expectDisconnect(protocol.ReasonProtocolError)
			return c
		}},
		{"CONNACK from a client", "protocol error", func(t *testing.T) *rawConn {
			// Only a server sends CONNACK (3.2): a Protocol Error.
			c := connected(t, "connack")
			c.write([]byte{0x20, 0x03, 0x00, 0x00, 0x00})
			c.expectDisconnect(protocol.ReasonProtocolError)
			return c
		}},
		{"CONNECT with Receive Maximum 0", "protocol error", func(t *testing.T) *rawConn {
			// 3.1.2.11.3: Receive Maximum 0 is a Protocol Error: CONNACK 0x82.
			c := v5(t)
			c.write(rawV5Connect("rm0", rawProps(0x21, 0x00, 0x00)))
			c.expectConnack(protocol.ReasonProtocolError)
			c.expectClosed()
			return c
		}},
		{"CONNECT with a duplicate property", "protocol error", func(t *testing.T) *rawConn {
			// 3.1.2.11.2: Session Expiry Interval twice is a Protocol Error.
			c := v5(t)
			c.write(rawV5Connect("dup", rawProps(
				0x11, 0x00, 0x00, 0x00, 0x0A, // Session Expiry Interval 10
				0x11, 0x00, 0x00, 0x00, 0x14))) // and again, 20
			c.expectConnack(protocol.ReasonProtocolError)
			c.expectClosed()
			return c
		}},
		{"protocol level 6", "unsupported protocol version", func(t *testing.T) *rawConn {
			// [MQTT-3.1.2-2] (5.0): a Protocol Version the server does not
			// accept gets CONNACK 0x84 Unsupported Protocol Version, then the
			// close. 0x84 is a v5 reason code: the v5 CONNACK form
			// 20 03 00 84 00.
			c := v5(t)
			c.write(rawPacket(0x10, rawStr("MQTT"), []byte{6, 0x02}, []byte{0x00, 0x1E}, rawProps(), rawStr("l6")))
			in := c.nextRaw(rawWait)
			if in.h.Type != protocol.TypeConnack || !bytes.Equal(in.body, []byte{0x00, 0x84, 0x00}) {
				t.Fatalf("got %s with body % x, want CONNACK 00 84 00 (v5, 0x84)", in.h.Type, in.body)
			}
			c.expectClosed()
			return c
		}},
		{"protocol level 2 named MQTT", "unsupported protocol version", func(t *testing.T) *rawConn {
			// 3.1.1 [MQTT-3.1.2-2]: an unsupported level gets the 3.1.1
			// CONNACK with return code 0x01, then the close.
			c := rawDial(t, b, protocol.Version311)
			c.write(rawPacket(0x10, rawStr("MQTT"), []byte{2, 0x02}, []byte{0x00, 0x1E}, rawStr("l2")))
			in := c.nextRaw(rawWait)
			if in.h.Type != protocol.TypeConnack || !bytes.Equal(in.body, []byte{0x00, 0x01}) {
				t.Fatalf("got %s with body % x, want CONNACK 00 01", in.h.Type, in.body)
			}
			c.expectClosed()
			return c
		}},
		{"CONNECT with an authentication method", "bad authentication method", func(t *testing.T) *rawConn {
			// [MQTT-4.12.0-1] an unsupported method: CONNACK 0x8C, then close.
			c := v5(t)
			cp := &protocol.Connect{Level: protocol.Version5, CleanStart: true, ClientID: []byte("scram")}
			cp.Props.AuthMethod = []byte("SCRAM-SHA-1")
			cp.Props.Set(protocol.PropAuthMethod)
			c.send(cp)
			c.expectConnack(protocol.ReasonBadAuthenticationMethod)
			c.expectClosed()
			return c
		}},
		{"CONNECT timeout", "timeout", func(t *testing.T) *rawConn {
			// [mqtt] connect_timeout = "500ms": a socket that sends nothing is
			// closed, without a packet (no CONNACK yet [MQTT-3.14.0-1]).
			c := v5(t)
			start := time.Now()
			c.expectClosed()
			if el := time.Since(start); el < 450*time.Millisecond {
				t.Fatalf("closed after %v, before connect_timeout 500ms", el)
			}
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.run(t)
			rawOneLog(t, b, c, tc.log)
			by.check()
		})
	}
}
