package protocol_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nanoactor/nanoactor/protocol"
	"github.com/nanoactor/nanoactor/protocol/fixture"
)

// Fuzzing. Both targets are seeded from every fixture (f.Add) and from the
// committed corpus in testdata/fuzz/<target>, which `go test` runs as
// ordinary test cases. Regenerate the committed fixture seeds after adding
// fixtures with
//
//	go test ./protocol -run '^TestWriteFuzzCorpus$' -update-fuzz-corpus
//
// and run a target with
//
//	go test ./protocol -run '^$' -fuzz '^FuzzDecode$' -fuzztime 2m

var updateFuzzCorpus = flag.Bool("update-fuzz-corpus", false, "rewrite the fixture seeds in testdata/fuzz")

// streamSplits are split patterns the reader seeds use: one byte at a time,
// small odd chunks, and whole buffers.
var streamSplits = [][]byte{nil, {0}, {2, 6, 0, 16}, {255}}

// readerSeeds are the FuzzReader seed inputs: each fixture alone, and all
// valid fixtures back to back under several splits and limits.
func readerSeeds() []readerSeed {
	var seeds []readerSeed
	var all []byte
	for _, c := range fixture.All() {
		seeds = append(seeds, readerSeed{name: c.Name, stream: c.Raw})
		if c.Packet != nil {
			all = append(all, c.Raw...)
		}
	}
	for i, s := range streamSplits {
		for _, limit := range []uint16{0, 8, 64} {
			seeds = append(seeds, readerSeed{name: fmt.Sprintf("all valid fixtures split %d limit %d", i, limit),
				stream: all, splits: s, limit: limit})
		}
	}
	return seeds
}

type readerSeed struct {
	name   string
	stream []byte
	splits []byte
	limit  uint16
}

// FuzzReader feeds a Reader an arbitrary stream split at points derived
// from splits (chunk sizes splits[i]+1, cycling), with a packet size limit
// of limit (0: none) and an initial buffer derived from splits[0]. The
// Reader must not panic, must never return a packet over the limit, and
// must yield exactly what a one-shot parse of the whole stream yields.
func FuzzReader(f *testing.F) {
	for _, s := range readerSeeds() {
		f.Add(s.stream, s.splits, s.limit)
	}
	f.Fuzz(func(t *testing.T, stream, splits []byte, limit uint16) {
		want := parseStream(stream, int(limit))
		size := 64
		if len(splits) > 0 {
			size = 64 * (1 + int(splits[0]%8))
		}
		readers := []io.Reader{
			&splitReader{data: stream, splits: splits},
			bytes.NewReader(stream),
		}
		for _, rd := range readers {
			r := protocol.NewReader(rd, size)
			r.SetMaxPacketSize(int(limit))
			got := streamResult{}
			for {
				h, body, err := r.Next()
				if err != nil {
					got.err = err
					break
				}
				if n := h.Len() + len(body); limit > 0 && n > int(limit) {
					t.Fatalf("packet of %d bytes returned, limit %d", n, limit)
				}
				got.headers = append(got.headers, h)
				got.bodies = append(got.bodies, bytes.Clone(body))
			}
			if d := got.diff(want); d != "" {
				t.Fatalf("reader with buffer %d, %T: %s", size, rd, d)
			}
		}
	})
}

// splitReader returns data in chunks of splits[i]+1 bytes, cycling through
// splits; one byte at a time when splits is empty.
type splitReader struct {
	data   []byte
	splits []byte
	i      int
}

func (s *splitReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(s.splits) > 0 {
		n = int(s.splits[s.i%len(s.splits)]) + 1
		s.i++
	}
	n = copy(p, s.data[:min(n, len(s.data))])
	s.data = s.data[n:]
	return n, nil
}

type streamResult struct {
	headers []protocol.Header
	bodies  [][]byte
	err     error
}

// parseStream is the reference: the whole stream parsed in place with
// ParseHeader, the limit (0: none) checked on each declared size.
func parseStream(stream []byte, limit int) streamResult {
	var res streamResult
	for off := 0; ; {
		if off == len(stream) {
			res.err = io.EOF
			return res
		}
		h, n, err := protocol.ParseHeader(stream[off:])
		if err == protocol.ErrIncomplete {
			res.err = io.ErrUnexpectedEOF
			return res
		}
		if err != nil {
			res.err = err
			return res
		}
		if limit > 0 && n+h.Remaining > limit {
			res.err = protocol.ReasonPacketTooLarge
			return res
		}
		if off+n+h.Remaining > len(stream) {
			res.err = io.ErrUnexpectedEOF
			return res
		}
		res.headers = append(res.headers, h)
		res.bodies = append(res.bodies, stream[off+n:off+n+h.Remaining])
		off += n + h.Remaining
	}
}

func (res streamResult) diff(want streamResult) string {
	if len(res.headers) != len(want.headers) {
		return fmt.Sprintf("got %d packets (err %v), want %d (err %v)", len(res.headers), res.err, len(want.headers), want.err)
	}
	for i := range res.headers {
		if res.headers[i] != want.headers[i] {
			return fmt.Sprintf("packet %d: header %+v, want %+v", i, res.headers[i], want.headers[i])
		}
		if !bytes.Equal(res.bodies[i], want.bodies[i]) {
			return fmt.Sprintf("packet %d: body %x, want %x", i, res.bodies[i], want.bodies[i])
		}
	}
	var ra, rb protocol.ReasonCode
	gotReason, wantReason := errors.As(res.err, &ra), errors.As(want.err, &rb)
	if gotReason != wantReason || (gotReason && ra != rb) || (!gotReason && res.err != want.err) {
		return fmt.Sprintf("final error %v, want %v", res.err, want.err)
	}
	return ""
}

// FuzzDecode is the round-trip target of every packet decoder: (version,
// raw packet) -> ParseHeader + Decode of everything after the fixed header
// must not panic, must not modify its
// input and must fail only with a ReasonCode; a packet it accepts must
// encode (Append succeeds and writes exactly Len bytes after any prefix)
// and decode back to an equal packet, and that re-encoding must be
// byte-identical (a valid encoding need not be canonical, so the first
// comparison is of packets, not bytes).
func FuzzDecode(f *testing.F) {
	for _, c := range fixture.All() {
		f.Add(byte(c.Version), c.Raw)
	}
	f.Fuzz(func(t *testing.T, version byte, raw []byte) {
		v := protocol.Version(3 + version%3) // 3.1, 3.1.1 or 5.0
		h, n, err := protocol.ParseHeader(raw)
		if err != nil {
			var rc protocol.ReasonCode
			if err != protocol.ErrIncomplete && !errors.As(err, &rc) {
				t.Fatalf("ParseHeader error without a reason code: %v", err)
			}
			return
		}
		// Whatever follows the fixed header is the body: the Remaining
		// Length is fixed up rather than checked (matching it to the body is
		// the Reader's job, fuzzed by FuzzReader), so that a mutation that
		// inserts or deletes bytes still yields a whole packet to decode.
		body := raw[n:]
		h.Remaining = len(body)
		orig := bytes.Clone(body)
		p, err := protocol.Decode(h, body, v)
		if !bytes.Equal(body, orig) {
			t.Fatalf("decode modified its input:\n%x\n%x", orig, body)
		}
		if err != nil {
			var rc protocol.ReasonCode
			if !errors.As(err, &rc) || !rc.IsError() {
				t.Fatalf("decode error without an error reason code: %v", err)
			}
			return
		}
		if p.Type() != h.Type {
			t.Fatalf("decoded %s from a %s header", p.Type(), h.Type)
		}
		enc := roundTrip(t, p, v)
		p2, err := decodeWhole(enc, v)
		if err != nil {
			t.Fatalf("decode of the encoding %x: %v", enc, err)
		}
		if d := cmp.Diff(p, p2, packetCmp...); d != "" {
			t.Fatalf("round trip mismatch (-decoded +re-decoded), encoding %x:\n%s", enc, d)
		}
		if enc2 := roundTrip(t, p2, v); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%x\n%x", enc, enc2)
		}
	})
}

// roundTrip encodes p after a prefix and checks Len.
func roundTrip(t *testing.T, p protocol.Packet, v protocol.Version) []byte {
	t.Helper()
	l := p.Len(v)
	prefix := []byte{0xAA, 0xBB}
	b, err := p.Append(prefix, v)
	if err != nil {
		t.Fatalf("append of a decoded %s (v%s): %v\npacket: %+v", p.Type(), v, err, p)
	}
	if !bytes.Equal(b[:2], []byte{0xAA, 0xBB}) {
		t.Fatalf("append changed the prefix")
	}
	if len(b)-2 != l {
		t.Fatalf("append wrote %d bytes, Len says %d: %x", len(b)-2, l, b[2:])
	}
	return b[2:]
}

// decodeWhole decodes one whole packet that must span all of raw.
func decodeWhole(raw []byte, v protocol.Version) (protocol.Packet, error) {
	h, n, err := protocol.ParseHeader(raw)
	if err != nil {
		return nil, err
	}
	if n+h.Remaining != len(raw) {
		return nil, fmt.Errorf("header declares %d body bytes, have %d", h.Remaining, len(raw)-n)
	}
	return protocol.Decode(h, raw[n:], v)
}

// TestDecodeFixtures checks the Decode entry point against every fixture.
func TestDecodeFixtures(t *testing.T) {
	for _, c := range fixture.All() {
		t.Run(c.Name, func(t *testing.T) {
			got, err := decodeWhole(c.Raw, c.Version)
			if c.Packet == nil {
				var rc protocol.ReasonCode
				if !errors.As(err, &rc) || rc != c.Err {
					t.Fatalf("got %v, want reason %v (%s)", err, c.Err, c.Spec)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(c.Packet, got, packetCmp...); d != "" {
				t.Fatalf("decode mismatch (-want +got):\n%s", d)
			}
		})
	}
}

func TestDecodeReservedTypes(t *testing.T) {
	for _, tt := range []struct {
		h protocol.Header
		v protocol.Version
	}{
		{protocol.Header{Type: protocol.TypeReserved}, protocol.Version5},
		{protocol.Header{Type: protocol.TypeAuth}, protocol.Version311},
		{protocol.Header{Type: protocol.TypeAuth}, protocol.Version31},
	} {
		if _, err := protocol.Decode(tt.h, nil, tt.v); !errors.Is(err, protocol.ReasonMalformedPacket) {
			t.Errorf("%s in %s: got %v, want malformed packet", tt.h.Type, tt.v, err)
		}
	}
}

// TestWriteFuzzCorpus rewrites the fixture seeds of the committed corpus
// (files named fixture-*) when run with -update-fuzz-corpus. Other corpus
// files (regressions found by fuzzing) are left alone.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*updateFuzzCorpus {
		t.Skip("run with -update-fuzz-corpus to rewrite testdata/fuzz")
	}
	decode := map[string]string{}
	for _, c := range fixture.All() {
		decode[corpusName(c.Name)] = corpusFile(byte(c.Version), c.Raw)
	}
	reader := map[string]string{}
	for _, s := range readerSeeds() {
		reader[corpusName(s.name)] = corpusFile(s.stream, s.splits, s.limit)
	}
	writeCorpus(t, "FuzzDecode", decode)
	writeCorpus(t, "FuzzReader", reader)
}

func corpusName(name string) string {
	var b strings.Builder
	b.WriteString("fixture-")
	dash := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimRight(b.String(), "-")
}

// corpusFile encodes values in the "go test fuzz v1" format.
func corpusFile(values ...any) string {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, v := range values {
		switch v := v.(type) {
		case byte:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case uint16:
			fmt.Fprintf(&b, "uint16(%d)\n", v)
		default:
			panic(fmt.Sprintf("corpusFile: type %T", v))
		}
	}
	return b.String()
}

func writeCorpus(t *testing.T, target string, files map[string]string) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	old, err := filepath.Glob(filepath.Join(dir, "fixture-*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%s: %d seeds", dir, len(files))
}
