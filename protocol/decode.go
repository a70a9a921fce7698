package protocol

import "fmt"

// Decode decodes one packet of any type: body is the h.Remaining bytes that
// follow the fixed header h, as Reader.Next or ParseHeader return them (h is
// trusted to be valid: ParseHeader has checked its flags), read on a
// connection of protocol level v. It returns a new packet of the type h
// names (see New); its []byte fields alias body, so a caller that keeps the
// packet past the next Reader.Next copies them first.
//
// Errors wrap the ReasonCode the receiver must answer with (for v5) or map
// (for 3.1.1, see ConnackCodeFor), prefixed with the packet type:
// "decode connect: will qos 3: malformed packet".
//
// Decode allocates the packet, which suits the rare packets (CONNECT,
// SUBSCRIBE, AUTH, ...). The broker's hot path does not use it for PUBLISH
// and the acks: it decodes them into values it reuses (pub.Decode(h, body,
// v)), which does not allocate in steady state.
func Decode(h Header, body []byte, v Version) (Packet, error) {
	if h.Type == TypeAuth && v < Version5 {
		// Type 15 is reserved (forbidden) before v5: 3.1.1 section 2.2.1.
		return nil, fmt.Errorf("%s: packet type 15 is reserved in %s: %w", decodeName(h.Type), v, ReasonMalformedPacket)
	}
	pk := New(h.Type)
	if pk == nil {
		// Type 0 is reserved (v5 section 2.1.2, 3.1.1 section 2.2.1); a type
		// New does not know yet is treated alike.
		return nil, fmt.Errorf("%s: packet type %d not supported: %w", decodeName(h.Type), byte(h.Type), ReasonMalformedPacket)
	}
	if err := pk.Decode(h, body, v); err != nil {
		return nil, err
	}
	return pk, nil
}
