package protocol_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/protocol/fixture"
)

// packetCmp compares packets treating nil and empty slices alike (a decoded
// empty field aliases the buffer, an expected one is often nil) while still
// comparing Properties' presence bits.
var packetCmp = []cmp.Option{
	cmpopts.EquateEmpty(),
	cmp.Exporter(func(reflect.Type) bool { return true }),
}

// decodeRaw parses a whole packet the way the stream reader does and
// decodes it into a fresh value of want's type (or of the type the header
// names when want is nil).
func decodeRaw(t *testing.T, raw []byte, v protocol.Version, want protocol.Packet) (protocol.Packet, error) {
	t.Helper()
	h, n, err := protocol.ParseHeader(raw)
	if err != nil {
		return nil, err
	}
	if n+h.Remaining != len(raw) {
		t.Fatalf("fixture length: header says %d body bytes, fixture has %d", h.Remaining, len(raw)-n)
	}
	var pk protocol.Packet
	if want != nil {
		pk = reflect.New(reflect.TypeOf(want).Elem()).Interface().(protocol.Packet)
	} else {
		pk = protocol.New(h.Type)
	}
	return pk, pk.Decode(h, raw[n:], v)
}

func TestFixtures(t *testing.T) {
	if len(fixture.All()) == 0 {
		t.Fatal("no fixtures registered")
	}
	for _, c := range fixture.All() {
		t.Run(c.Name, func(t *testing.T) {
			got, err := decodeRaw(t, c.Raw, c.Version, c.Packet)
			if c.Packet == nil {
				var rc protocol.ReasonCode
				if !errors.As(err, &rc) {
					t.Fatalf("decode: got err %v, want reason %v (%s)", err, c.Err, c.Spec)
				}
				if rc != c.Err {
					t.Fatalf("decode: got reason %v (%v), want %v (%s)", rc, err, c.Err, c.Spec)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if d := cmp.Diff(c.Packet, got, packetCmp...); d != "" {
				t.Fatalf("decode mismatch (-want +got):\n%s", d)
			}
			if c.DecodeOnly {
				return
			}
			if n := c.Packet.Len(c.Version); n != len(c.Raw) {
				t.Errorf("Len = %d, want %d", n, len(c.Raw))
			}
			prefix := []byte{0xAA}
			b, err := c.Packet.Append(prefix, c.Version)
			if err != nil {
				t.Fatalf("append: %v", err)
			}
			if d := cmp.Diff(c.Raw, b[1:]); d != "" || b[0] != 0xAA {
				t.Fatalf("append mismatch (-want +got):\n%s", d)
			}
			// Round trip: decode(encode(p)) == p.
			again, err := decodeRaw(t, b[1:], c.Version, c.Packet)
			if err != nil {
				t.Fatalf("decode of encoding: %v", err)
			}
			if d := cmp.Diff(c.Packet, again, packetCmp...); d != "" {
				t.Fatalf("round trip mismatch (-want +got):\n%s", d)
			}
		})
	}
}
