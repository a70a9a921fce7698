package protocol

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/nanoactor/nanoactor/protocol/topic"
)

// Protocol names by level (section 3.1.2.1; MQTT 3.1 used "MQIsdp").
const (
	protocolName   = "MQTT"
	protocolName31 = "MQIsdp"
)

// bridgeBit marks a CONNECT from a bridge: a non-standard extension of the
// protocol level byte (level | 0x80) that Mosquitto bridges send by default
// ("try_private") and most brokers accept, for 3.1 and 3.1.1 only.
const bridgeBit = 0x80

// Connect flag bits (section 3.1.2.3).
const (
	connectReserved   = 0x01
	connectCleanStart = 0x02
	connectWill       = 0x04
	connectWillQoS    = 0x18 // two bits, shifted by 3
	connectWillRetain = 0x20
	connectPassword   = 0x40
	connectUsername   = 0x80
)

// Will is the Will Message of a CONNECT (sections 3.1.2.5-3.1.2.7, 3.1.3.2-
// 3.1.3.4). It is meaningful only when Connect.WillFlag is set.
type Will struct {
	QoS     byte   // 0, 1 or 2
	Retain  bool   // publish the Will Message as retained
	Topic   []byte // Will Topic: a UTF-8 topic name, no wildcards
	Payload []byte // Will Payload: binary data
	Props   Properties
}

// Connect is a CONNECT packet (section 3.1) of MQTT 3.1 (level 3, protocol
// name "MQIsdp"), 3.1.1 (level 4, "MQTT") or 5.0 (level 5, "MQTT"). The
// packet carries its own level: Len, Append and Decode ignore their Version
// argument and use Level.
//
// The flags decide what is on the wire: Will is written only when WillFlag
// is set, Username only when UsernameFlag is set, Password only when
// PasswordFlag is set, and Props and Will.Props only at level 5. A present
// field may be empty ("" user name is not an absent one).
//
// Every []byte field of a decoded Connect (Props and Will.Props included)
// aliases the body passed to Decode. Decoding into a reused Connect does not
// allocate: Props and Will.Props keep their slices' backing arrays.
//
// # Errors and the protocol level
//
// Decode sets Level as soon as it has read the protocol level byte, and
// keeps it when it fails afterwards, so the broker can answer in the
// client's format (see AckVersion):
//
//   - A protocol name other than "MQTT"/"MQIsdp", or a level that does not
//     match the name ("MQIsdp" goes with 3, "MQTT" with 4 and 5), fails with
//     a wrapped ReasonUnsupportedProtocolVersion and nothing after the level
//     is decoded. Level then holds the level byte as sent (less the bridge
//     bit of 0x83 and 0x84).
//     3.1.1 requires a CONNACK with return code 0x01 for an unsupported
//     level [MQTT-3.1.2-2] (ConnackCodeFor maps 0x84 to it); v5 allows a
//     CONNACK 0x84 [MQTT-3.1.2-1] [MQTT-3.1.2-2].
//   - Any other error wraps the reason a v5 CONNACK must carry (0x81
//     malformed, 0x82 protocol error, 0x85 client identifier not valid, 0x90
//     topic name invalid); for 3.1 and 3.1.1 the broker maps it with
//     ConnackCodeFor and closes without a CONNACK where there is no code
//     [MQTT-3.1.4-1] [MQTT-3.2.2-6].
//
// Level is 0 when the body ended before the level byte.
//
// Decode rejects an empty client identifier where the standard does (3.1,
// and 3.1.1 without Clean Session [MQTT-3.1.3-8]: 0x85, return code 0x02).
// Left to the broker: which other identifiers it accepts ([MQTT-3.1.3-5]
// .. [MQTT-3.1.3-9], v5 0x85); a will QoS or retain it
// does not support ([MQTT-3.2.2-12], [MQTT-3.2.2-13]: CONNACK 0x9B, 0x9A);
// validating a will payload whose Payload Format Indicator is 1 (a MAY,
// CONNACK 0x99, 3.1.3.2.3); a will topic starting with "$".
//
// # MQTT 3.1
//
// For level 3 Decode follows the 3.1 specification and what Mosquitto
// accepts: the reserved flag bit is not checked (3.1 only calls it unused);
// a User Name or Password flag whose string is missing at the end of the
// packet is accepted as absent (3.1 section 3.1: "the Remaining Length field
// from the fixed header takes precedence"); an empty client identifier is
// rejected with ReasonClientIdentifierNotValid (3.1 section 3.1: the Client
// Identifier is 1 to 23 characters; CONNACK 0x02). Longer identifiers are
// accepted: the 23-character limit is left to broker policy.
type Connect struct {
	Level      Version // protocol level: Version31, Version311 or Version5
	Bridge     bool    // level byte had 0x80 set (a 3.1/3.1.1 bridge; non-standard)
	CleanStart bool    // Clean Start (v5) / Clean Session (3.1, 3.1.1)
	KeepAlive  uint16  // seconds; 0 disables keep alive
	ClientID   []byte  // UTF-8; may be empty (v5, 3.1.1 with CleanStart)

	WillFlag bool
	Will     Will

	UsernameFlag bool
	Username     []byte // UTF-8
	PasswordFlag bool
	Password     []byte // binary data

	Props Properties // v5 CONNECT properties
}

// Type returns TypeConnect.
func (c *Connect) Type() Type { return TypeConnect }

// AckVersion is the protocol version in which a CONNACK answering c must be
// encoded, also after Decode failed: Version5 for level 5, Version31 for
// level 3, and the 3.1.1 format for every other level (4, an unsupported
// level such as 6, or 0 when the level was never read). The 3.1.1 format is
// what [MQTT-3.1.2-2] of 3.1.1 prescribes for an unsupported level (return
// code 0x01), and what Mosquitto sends.
func (c *Connect) AckVersion() Version {
	switch c.Level {
	case Version5, Version31:
		return c.Level
	}
	return Version311
}

// protocolNameFor returns the protocol name of level v, or "" when v is not
// a level this package speaks.
func protocolNameFor(v Version) string {
	switch v {
	case Version31:
		return protocolName31
	case Version311, Version5:
		return protocolName
	}
	return ""
}

func (c *Connect) flags() byte {
	var f byte
	if c.CleanStart {
		f |= connectCleanStart
	}
	if c.WillFlag {
		f |= connectWill | c.Will.QoS<<3&connectWillQoS
		if c.Will.Retain {
			f |= connectWillRetain
		}
	}
	if c.UsernameFlag {
		f |= connectUsername
	}
	if c.PasswordFlag {
		f |= connectPassword
	}
	return f
}

func (c *Connect) bodyLen() int {
	n := 2 + len(protocolNameFor(c.Level)) + 1 + 1 + 2 // name, level, flags, keep alive
	v5 := c.Level >= Version5
	if v5 {
		n += c.Props.Len(TypeConnect)
	}
	n += 2 + len(c.ClientID)
	if c.WillFlag {
		if v5 {
			n += c.Will.Props.Len(PropsWill)
		}
		n += 2 + len(c.Will.Topic) + 2 + len(c.Will.Payload)
	}
	if c.UsernameFlag {
		n += 2 + len(c.Username)
	}
	if c.PasswordFlag {
		n += 2 + len(c.Password)
	}
	return n
}

// Len implements Packet; v is ignored (the packet carries its level).
func (c *Connect) Len(Version) int { return packetLen(c.bodyLen()) }

// check reports what makes c unencodable: an unknown level, a bridge flag
// at level 5, a will QoS of 3, a 3.x password without user name, or a field
// too long for its two-byte length.
func (c *Connect) check() error {
	if protocolNameFor(c.Level) == "" {
		return fmt.Errorf("encode connect: protocol level %d: %w", byte(c.Level), ReasonUnsupportedProtocolVersion)
	}
	if c.Bridge && c.Level >= Version5 {
		return fmt.Errorf("encode connect: bridge flag at level 5: %w", ReasonUnsupportedProtocolVersion)
	}
	if c.WillFlag && c.Will.QoS > 2 {
		return fmt.Errorf("encode connect: will qos %d: %w", c.Will.QoS, ReasonMalformedPacket) // [MQTT-3.1.2-14] (v5 [MQTT-3.1.2-12])
	}
	if c.Level < Version5 && c.PasswordFlag && !c.UsernameFlag {
		return fmt.Errorf("encode connect: password without user name: %w", ReasonMalformedPacket) // [MQTT-3.1.2-22]
	}
	if err := checkString("connect client identifier", c.ClientID); err != nil {
		return err
	}
	if c.WillFlag {
		if err := checkString("connect will topic", c.Will.Topic); err != nil {
			return err
		}
		if err := checkString("connect will payload", c.Will.Payload); err != nil {
			return err
		}
	}
	if c.UsernameFlag {
		if err := checkString("connect user name", c.Username); err != nil {
			return err
		}
	}
	if c.PasswordFlag {
		if err := checkString("connect password", c.Password); err != nil {
			return err
		}
	}
	return nil
}

// Append implements Packet; v is ignored (the packet carries its level). It
// returns b unchanged and an error for an unknown Level, a will QoS of 3, a
// 3.1/3.1.1 password without user name [MQTT-3.1.2-22], a string or binary
// field over 65535 bytes, a property Properties.Append refuses, or a packet
// over the maximum Remaining Length.
func (c *Connect) Append(b []byte, _ Version) ([]byte, error) {
	if err := c.check(); err != nil {
		return b, err
	}
	n := c.bodyLen()
	if err := checkRemaining("connect", n); err != nil {
		return b, err
	}
	start := len(b)
	b = appendHeader(b, TypeConnect, 0, n)
	name := protocolNameFor(c.Level)
	b = appendU16(b, uint16(len(name)))
	b = append(b, name...)
	level := byte(c.Level)
	if c.Bridge {
		level |= bridgeBit
	}
	b = append(b, level, c.flags())
	b = appendU16(b, c.KeepAlive)
	v5 := c.Level >= Version5
	var err error
	if v5 {
		if b, err = c.Props.Append(b, TypeConnect); err != nil {
			return b[:start], fmt.Errorf("encode connect: %w", err)
		}
	}
	b = appendBinary(b, c.ClientID)
	if c.WillFlag {
		if v5 {
			if b, err = c.Will.Props.Append(b, PropsWill); err != nil {
				return b[:start], fmt.Errorf("encode connect: %w", err)
			}
		}
		b = appendBinary(b, c.Will.Topic)
		b = appendBinary(b, c.Will.Payload)
	}
	if c.UsernameFlag {
		b = appendBinary(b, c.Username)
	}
	if c.PasswordFlag {
		b = appendBinary(b, c.Password)
	}
	return b, nil
}

// reset zeroes c field by field (cheaper than copying the two Properties
// out and back), keeping the backing arrays of its properties' slices.
// TestConnectDecodeReuse catches a field added to Connect but not here.
func (c *Connect) reset() {
	c.Level, c.Bridge, c.CleanStart, c.KeepAlive, c.ClientID = 0, false, false, 0, nil
	c.WillFlag = false
	c.Will.QoS, c.Will.Retain, c.Will.Topic, c.Will.Payload = 0, false, nil, nil
	c.Will.Props.Reset()
	c.UsernameFlag, c.Username, c.PasswordFlag, c.Password = false, nil, false, nil
	c.Props.Reset()
}

// Decode implements Packet; v is ignored: the packet names its own level,
// which Decode stores in Level even when it fails (see Connect). Decoded
// fields alias body.
func (c *Connect) Decode(_ Header, body []byte, _ Version) error {
	c.reset()
	d := decoder{b: body, what: decodeName(TypeConnect)}
	name := d.binary()
	level := d.u8()
	if d.err != nil {
		return d.err
	}
	if level&bridgeBit != 0 && (level&^bridgeBit == byte(Version31) || level&^bridgeBit == byte(Version311)) {
		c.Bridge = true
		level &^= bridgeBit
	}
	c.Level = Version(level)
	if want := protocolNameFor(c.Level); want == "" || string(name) != want {
		// 3.1.1 [MQTT-3.1.2-1] [MQTT-3.1.2-2]; v5 [MQTT-3.1.2-1] [MQTT-3.1.2-2]
		d.fail("protocol name %q level %d: %w", name[:min(len(name), 16)], level, ReasonUnsupportedProtocolVersion)
		return d.err
	}
	v5 := c.Level >= Version5
	flags := d.u8()
	c.KeepAlive = d.u16()
	if d.err != nil {
		return d.err
	}
	if flags&connectReserved != 0 && c.Level >= Version311 {
		d.fail("reserved connect flag set: %w", ReasonMalformedPacket) // [MQTT-3.1.2-3]
		return d.err
	}
	c.CleanStart = flags&connectCleanStart != 0
	c.WillFlag = flags&connectWill != 0
	c.UsernameFlag = flags&connectUsername != 0
	c.PasswordFlag = flags&connectPassword != 0
	willQoS := flags & connectWillQoS >> 3
	willRetain := flags&connectWillRetain != 0
	switch {
	case !c.WillFlag && willQoS != 0:
		d.fail("will qos %d without will flag: %w", willQoS, ReasonMalformedPacket) // [MQTT-3.1.2-11] [MQTT-3.1.2-13] (v5 [MQTT-3.1.2-11])
	case !c.WillFlag && willRetain:
		d.fail("will retain without will flag: %w", ReasonMalformedPacket) // [MQTT-3.1.2-11] [MQTT-3.1.2-15] (v5 [MQTT-3.1.2-13])
	case willQoS == 3:
		d.fail("will qos 3: %w", ReasonMalformedPacket) // [MQTT-3.1.2-14] (v5 [MQTT-3.1.2-12])
	case !v5 && c.PasswordFlag && !c.UsernameFlag:
		d.fail("password flag without user name flag: %w", ReasonMalformedPacket) // [MQTT-3.1.2-22]; v5 allows it (3.1.2.9)
	}
	if d.err != nil {
		return d.err
	}
	if v5 {
		c.Props.decode(&d, TypeConnect)
		if d.err == nil && c.Props.Has(PropAuthData) && !c.Props.Has(PropAuthMethod) {
			d.fail("authentication data without authentication method: %w", ReasonProtocolError) // 3.1.2.11.10
		}
	}
	// Payload, in the order of [MQTT-3.1.3-1].
	c.ClientID = d.utf8() // [MQTT-3.1.3-3] [MQTT-3.1.3-4]
	if c.WillFlag {
		c.Will.QoS, c.Will.Retain = willQoS, willRetain
		if v5 {
			c.Will.Props.decode(&d, PropsWill) // [MQTT-3.1.2-9]
		}
		c.Will.Topic = d.utf8()     // [MQTT-3.1.2-9] 3.1.1 [MQTT-3.1.3-10] (v5 [MQTT-3.1.3-11])
		c.Will.Payload = d.binary() // [MQTT-3.1.2-9]
	}
	if c.UsernameFlag {
		if c.Level == Version31 && d.err == nil && d.remaining() == 0 {
			c.UsernameFlag = false // 3.1: Remaining Length takes precedence over the flag
		} else {
			c.Username = d.utf8() // [MQTT-3.1.2-19] [MQTT-3.1.3-11] (v5 [MQTT-3.1.2-17] [MQTT-3.1.3-12])
		}
	}
	if c.PasswordFlag {
		if c.Level == Version31 && d.err == nil && d.remaining() == 0 {
			c.PasswordFlag = false // 3.1: Remaining Length takes precedence over the flag
		} else {
			c.Password = d.binary() // [MQTT-3.1.2-21] (v5 [MQTT-3.1.2-19])
		}
	}
	// Trailing bytes: a field whose flag is 0 is present [MQTT-3.1.2-11]
	// [MQTT-3.1.2-18] [MQTT-3.1.2-20] (v5 [MQTT-3.1.2-16] [MQTT-3.1.2-18]).
	if err := d.done(); err != nil {
		return err
	}
	// Checks of well-formed content come last, so a malformed packet is
	// always reported as malformed.
	if len(c.ClientID) == 0 {
		switch {
		case c.Level == Version31:
			d.fail("empty client identifier: %w", ReasonClientIdentifierNotValid) // 3.1 section 3.1: 1 to 23 characters
		case c.Level == Version311 && !c.CleanStart:
			d.fail("empty client identifier without clean session: %w", ReasonClientIdentifierNotValid) // [MQTT-3.1.3-8]
		}
	}
	if d.err == nil && c.WillFlag {
		if err := topic.ValidName(c.Will.Topic); err != nil {
			if errors.Is(err, topic.ErrMalformedUTF8) {
				d.fail("will topic: %v: %w", err, ReasonMalformedPacket) // [MQTT-1.5.4-1] [MQTT-1.5.4-2]
			} else {
				// Empty, or a wildcard [MQTT-4.7.3-1] (3.1.1 [MQTT-4.7.1-1], v5 [MQTT-4.7.0-1]).
				d.fail("will topic: %v: %w", err, ReasonTopicNameInvalid)
			}
		}
	}
	if d.err == nil && c.Will.Props.Has(PropResponseTopic) && bytes.ContainsAny(c.Will.Props.ResponseTopic, "+#") {
		// The Will is published as a PUBLISH, whose Response Topic must not
		// hold wildcards [MQTT-3.3.2-14]; PUBLISH decoding calls it a
		// Protocol Error too.
		d.fail("wildcard in will response topic: %w", ReasonProtocolError)
	}
	return d.err
}
