package protocol

// Packet is an MQTT control packet. Every packet type in this package
// implements it with a pointer receiver.
//
// Len is the full encoded size for version v, fixed header included.
// Append appends exactly Len bytes to b, or returns b unchanged and an error
// when the packet cannot be encoded (a field too long, a property not
// allowed, a packet too large). Decode parses body, the bytes after the
// fixed header h, into the receiver, overwriting it; []byte fields alias
// body. For CONNECT, v is ignored: the packet carries its own level.
type Packet interface {
	Type() Type
	Len(v Version) int
	Append(b []byte, v Version) ([]byte, error)
	Decode(h Header, body []byte, v Version) error
}

// packetLen is the full length of a packet whose body is n bytes.
func packetLen(n int) int { return 1 + varintLen(n) + n }

var decodeNames = [16]string{"decode reserved", "decode connect", "decode connack", "decode publish",
	"decode puback", "decode pubrec", "decode pubrel", "decode pubcomp", "decode subscribe",
	"decode suback", "decode unsubscribe", "decode unsuback", "decode pingreq", "decode pingresp",
	"decode disconnect", "decode auth"}

// decodeName is the error prefix for decoding t, e.g. "decode publish".
// A table, so that building a decoder never allocates.
func decodeName(t Type) string {
	if t < 16 {
		return decodeNames[t]
	}
	return "decode packet"
}

// New returns a new zero packet of type t, or nil for the reserved type 0.
// For PUBACK, PUBREC, PUBREL and PUBCOMP it returns an *Ack of that kind.
func New(t Type) Packet {
	switch t {
	case TypePuback, TypePubrec, TypePubrel, TypePubcomp:
		return &Ack{Kind: t}
	case TypePublish:
		return &Publish{}
	case TypeSubscribe:
		return &Subscribe{}
	case TypeSuback:
		return &Suback{}
	case TypeUnsubscribe:
		return &Unsubscribe{}
	case TypeUnsuback:
		return &Unsuback{}
	case TypePingreq:
		return &Pingreq{}
	case TypePingresp:
		return &Pingresp{}
	case TypeConnect:
		return &Connect{}
	case TypeConnack:
		return &Connack{}
	case TypeDisconnect:
		return &Disconnect{}
	case TypeAuth:
		return &Auth{}
	}
	return nil
}
