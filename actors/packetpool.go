package actors

import (
	"sync"

	"github.com/nanoactor/nanoactor/protocol"
)

// The two packet types of the message path, PUBLISH and the four
// acknowledgements, are decoded into pooled values: each carries a v5
// properties block of some 330 bytes, and a fresh one per packet was the
// largest allocation per message. The session returns a packet with
// recycle once it has handled it; what it keeps (a Message) holds slices
// of the packet's body, never the packet value itself.
var (
	publishPool = sync.Pool{New: func() any { return new(protocol.Publish) }}
	ackPool     = sync.Pool{New: func() any { return new(protocol.Ack) }}
)

// decodeInbound is protocol.Decode with pooled PUBLISH and ack values.
func decodeInbound(h protocol.Header, body []byte, v protocol.Version) (protocol.Packet, error) {
	switch h.Type {
	case protocol.TypePublish:
		p := publishPool.Get().(*protocol.Publish)
		if err := p.Decode(h, body, v); err != nil {
			recycle(p)
			return nil, err
		}
		return p, nil
	case protocol.TypePuback, protocol.TypePubrec, protocol.TypePubrel, protocol.TypePubcomp:
		a := ackPool.Get().(*protocol.Ack)
		a.Kind = h.Type
		if err := a.Decode(h, body, v); err != nil {
			recycle(a)
			return nil, err
		}
		return a, nil
	}
	return protocol.Decode(h, body, v)
}

// recycle returns a packet from decodeInbound to its pool, cleared: no
// slice of it (topic, payload, user properties) is shared with the next
// packet decoded into the same value. Other types are left to the GC.
func recycle(p protocol.Packet) {
	switch x := p.(type) {
	case *protocol.Publish:
		*x = protocol.Publish{}
		publishPool.Put(x)
	case *protocol.Ack:
		*x = protocol.Ack{}
		ackPool.Put(x)
	}
}
