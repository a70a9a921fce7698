package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// rawPublish encodes a PUBLISH by hand (the reader must not depend on the
// packet types): topic, a packet identifier when qos > 0, and payload.
func rawPublish(qos byte, topic string, id uint16, payload []byte) []byte {
	body := appendU16(nil, uint16(len(topic)))
	body = append(body, topic...)
	if qos > 0 {
		body = appendU16(body, id)
	}
	body = append(body, payload...)
	b := appendHeader(nil, TypePublish, qos<<1, len(body))
	return append(b, body...)
}

// rawPacket encodes a fixed header and body.
func rawPacket(t Type, flags byte, body []byte) []byte {
	return append(appendHeader(nil, t, flags, len(body)), body...)
}

// readResult is what a Reader produced: packets (bodies copied) and the
// final error.
type readResult struct {
	headers []Header
	bodies  [][]byte
	err     error
}

func readAll(r *Reader) readResult {
	var res readResult
	for i := 0; ; i++ {
		h, body, err := r.Next()
		if err != nil {
			res.err = err
			return res
		}
		if len(body) != h.Remaining || cap(body) != len(body) {
			res.err = fmt.Errorf("packet %d: body len %d cap %d, header says %d", i, len(body), cap(body), h.Remaining)
			return res
		}
		res.headers = append(res.headers, h)
		res.bodies = append(res.bodies, bytes.Clone(body))
	}
}

// sameErr reports whether two terminal errors mean the same: identical
// sentinel (io.EOF, io.ErrUnexpectedEOF, ...) or the same ReasonCode.
func sameErr(a, b error) bool {
	var ra, rb ReasonCode
	if errors.As(a, &ra) || errors.As(b, &rb) {
		return errors.As(a, &ra) && errors.As(b, &rb) && ra == rb
	}
	return errors.Is(a, b) || errors.Is(b, a)
}

func (res readResult) diff(want readResult) string {
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
	if !sameErr(res.err, want.err) {
		return fmt.Sprintf("final error %v, want %v", res.err, want.err)
	}
	return ""
}

// chunkReader returns data in chunks of random sizes in [1, maxChunk].
type chunkReader struct {
	data     []byte
	rng      *rand.Rand
	maxChunk int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(1+c.rng.IntN(c.maxChunk), len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// countReader counts Read calls.
type countReader struct {
	r     io.Reader
	reads int
}

func (c *countReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

// loopReader serves data over and over without allocating.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], l.data[l.off:])
		n += c
		l.off = (l.off + c) % len(l.data)
	}
	return n, nil
}

func TestReaderTable(t *testing.T) {
	ping := []byte{0xC0, 0x00}
	pub := rawPublish(1, "a/b", 7, []byte("hello"))
	big := rawPublish(0, "t", 0, bytes.Repeat([]byte{'x'}, 200)) // 2-byte Remaining Length
	tests := []struct {
		name    string
		stream  []byte
		max     int      // SetMaxPacketSize(max) unless 0
		noLimit bool     // SetMaxPacketSize(0)
		packets [][]byte // whole packets expected, in order
		err     error    // final error: a sentinel or a ReasonCode
	}{
		{name: "empty stream", stream: nil, err: io.EOF},
		{name: "one pingreq", stream: ping, packets: [][]byte{ping}, err: io.EOF},
		{name: "several packets", stream: cat(ping, pub, big, ping), packets: [][]byte{ping, pub, big, ping}, err: io.EOF},
		{name: "eof after first header byte", stream: cat(ping, []byte{0x30}), packets: [][]byte{ping}, err: io.ErrUnexpectedEOF},
		{name: "eof inside remaining length", stream: []byte{0x30, 0xC8}, err: io.ErrUnexpectedEOF},
		{name: "eof inside body", stream: cat(pub, big[:50]), packets: [][]byte{pub}, err: io.ErrUnexpectedEOF},
		{name: "remaining length of five bytes", stream: []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, err: ReasonMalformedPacket},
		{name: "non-minimal remaining length", stream: []byte{0xC0, 0x80, 0x00}, err: ReasonMalformedPacket},
		{name: "reserved flags", stream: cat(ping, []byte{0xC1, 0x00}, ping), packets: [][]byte{ping}, err: ReasonMalformedPacket},
		{name: "publish qos 3", stream: []byte{0x36, 0x00}, err: ReasonMalformedPacket},
		{name: "reserved type 0", stream: []byte{0x00, 0x00}, err: ReasonMalformedPacket},
		{name: "packet at the limit", stream: cat(big, ping), max: len(big), packets: [][]byte{big, ping}, err: io.EOF},
		{name: "packet one over the limit", stream: cat(ping, big, ping), max: len(big) - 1, packets: [][]byte{ping}, err: ReasonPacketTooLarge},
		{name: "limit counts the fixed header", stream: pub, max: len(pub) - 2, err: ReasonPacketTooLarge},
		{name: "huge declared length, no body", stream: []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}, err: ReasonPacketTooLarge},
		{name: "zero limit is the protocol maximum", stream: cat(big), noLimit: true, packets: [][]byte{big}, err: io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tt.stream), 64)
			if tt.max != 0 || tt.noLimit {
				r.SetMaxPacketSize(tt.max)
			}
			want := readResult{err: tt.err}
			for _, p := range tt.packets {
				h, n, err := ParseHeader(p)
				if err != nil {
					t.Fatal(err)
				}
				want.headers = append(want.headers, h)
				want.bodies = append(want.bodies, p[n:])
			}
			got := readAll(r)
			if d := got.diff(want); d != "" {
				t.Fatal(d)
			}
			// Sticky: the error repeats.
			if _, _, err := r.Next(); err != got.err {
				t.Fatalf("second error %v, want %v again", err, got.err)
			}
		})
	}
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// mixedStream is a stream of packets of every size class: empty bodies,
// small packets, packets larger than a small buffer, and one with a
// three-byte Remaining Length.
func mixedStream() []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	var s []byte
	for i := range 300 {
		switch i % 7 {
		case 0:
			s = append(s, 0xC0, 0x00) // PINGREQ
		case 1:
			s = append(s, rawPublish(0, "sensors/temp", 0, []byte("21.5"))...)
		case 2:
			s = append(s, rawPublish(1, "a", uint16(i), make([]byte, rng.IntN(300)))...)
		case 3:
			s = append(s, 0x62, 0x02, 0x00, byte(i)) // PUBREL
		case 4:
			s = append(s, rawPacket(TypeSubscribe, 0x02, []byte{0x00, 0x01, 0x00, 0x03, 'a', '/', '#', 0x01})...)
		case 5:
			payload := make([]byte, rng.IntN(5000))
			for j := range payload {
				payload[j] = byte(rng.Uint32())
			}
			s = append(s, rawPublish(2, "big/one", 9, payload)...)
		case 6:
			s = append(s, 0xE0, 0x00) // DISCONNECT
		}
	}
	// 20,000 bytes: a three-byte Remaining Length.
	return append(s, rawPublish(0, "huge", 0, bytes.Repeat([]byte{0xAB}, 20_000))...)
}

func TestReaderSplits(t *testing.T) {
	stream := mixedStream()
	want := readAll(NewReader(bytes.NewReader(stream), len(stream)+10))
	if want.err != io.EOF || len(want.headers) != 301 {
		t.Fatalf("one-shot read: %d packets, err %v", len(want.headers), want.err)
	}
	readers := map[string]func() io.Reader{
		"all at once": func() io.Reader { return bytes.NewReader(stream) },
		"one byte":    func() io.Reader { return iotest.OneByteReader(bytes.NewReader(stream)) },
		"half":        func() io.Reader { return iotest.HalfReader(bytes.NewReader(stream)) },
		"data with eof": func() io.Reader {
			return iotest.DataErrReader(iotest.HalfReader(bytes.NewReader(stream)))
		},
	}
	for seed := range uint64(8) {
		for _, maxChunk := range []int{3, 17, 100, 5000} {
			readers[fmt.Sprintf("random chunks %d seed %d", maxChunk, seed)] = func() io.Reader {
				return &chunkReader{data: stream, rng: rand.New(rand.NewPCG(seed, 99)), maxChunk: maxChunk}
			}
		}
	}
	for name, mk := range readers {
		for _, size := range []int{0, 64, 100, 1000, 4096, 70_000} {
			t.Run(fmt.Sprintf("%s/buffer %d", name, size), func(t *testing.T) {
				if d := readAll(NewReader(mk(), size)).diff(want); d != "" {
					t.Fatal(d)
				}
			})
		}
	}
}

// oneShotReader returns its data in the first Read and fails the test if
// Read is called again.
type oneShotReader struct {
	t    *testing.T
	data []byte
	done bool
}

func (o *oneShotReader) Read(p []byte) (int, error) {
	if o.done {
		o.t.Fatal("Read called after an oversized header: the body must not be read")
	}
	o.done = true
	return copy(p, o.data), nil
}

func TestReaderTooLargeRejectedBeforeRead(t *testing.T) {
	for _, tt := range []struct {
		name string
		data []byte
		max  int
	}{
		// 268,435,455 bytes declared; the reader would serve them.
		{"protocol maximum declared", []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}, 1 << 20},
		{"just over the limit", []byte{0x30, 0xFD, 0x07}, 1000}, // 1 + 2 + 1021 = 1024
		{"pre-connect limit", cat([]byte{0x10, 0x80, 0x80, 0x04}, []byte("\x00\x04MQTT")), 4096},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(&oneShotReader{t: t, data: tt.data}, 64)
			r.SetMaxPacketSize(tt.max)
			_, _, err := r.Next()
			if !errors.Is(err, ReasonPacketTooLarge) {
				t.Fatalf("got %v, want packet too large", err)
			}
			if len(r.buf) != 64 {
				t.Fatalf("buffer grew to %d for a rejected packet", len(r.buf))
			}
		})
	}
}

func TestReaderEOF(t *testing.T) {
	ping := []byte{0xD0, 0x00}
	errBoom := errors.New("boom")
	tests := []struct {
		name string
		r    io.Reader
		n    int
		err  error
	}{
		{"eof at boundary", bytes.NewReader(cat(ping, ping)), 2, io.EOF},
		{"eof with the last data", iotest.DataErrReader(bytes.NewReader(cat(ping, ping))), 2, io.EOF},
		{"eof mid header", bytes.NewReader(cat(ping, []byte{0x30, 0x80})), 1, io.ErrUnexpectedEOF},
		{"eof mid body", iotest.DataErrReader(bytes.NewReader([]byte{0x30, 0x05, 0x00})), 0, io.ErrUnexpectedEOF},
		{"error after packets", io.MultiReader(bytes.NewReader(cat(ping, ping, ping)), iotest.ErrReader(errBoom)), 3, errBoom},
		{"error with the data", &errWithData{data: cat(ping, ping), err: errBoom}, 2, errBoom},
		{"no progress", iotest.ErrReader(nil), 0, io.ErrNoProgress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := readAll(NewReader(tt.r, 0))
			if len(res.headers) != tt.n || res.err != tt.err {
				t.Fatalf("got %d packets and %v, want %d and %v", len(res.headers), res.err, tt.n, tt.err)
			}
		})
	}
}

// errWithData returns all its data together with err.
type errWithData struct {
	data []byte
	err  error
}

func (e *errWithData) Read(p []byte) (int, error) {
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, e.err
}

func TestReaderBatchesReads(t *testing.T) {
	pub := rawPublish(0, "sensors/1/temp", 0, []byte("21.5"))
	stream := bytes.Repeat(pub, 1000)
	cr := &countReader{r: bytes.NewReader(stream)}
	r := NewReader(cr, 4096)
	res := readAll(r)
	if res.err != io.EOF || len(res.headers) != 1000 {
		t.Fatalf("got %d packets, %v", len(res.headers), res.err)
	}
	// Each read fills the buffer (less a partial packet) and the final one
	// sees EOF.
	if limit := len(stream)/(4096-len(pub)) + 2; cr.reads > limit {
		t.Fatalf("%d reads for %d bytes with a 4096-byte buffer, want at most %d", cr.reads, len(stream), limit)
	}
}

func TestReaderBuffered(t *testing.T) {
	ping := []byte{0xC0, 0x00}
	r := NewReader(bytes.NewReader(cat(ping, ping, ping)), 0)
	for want := 4; want >= 0; want -= 2 {
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if r.Buffered() != want {
			t.Fatalf("Buffered() = %d, want %d", r.Buffered(), want)
		}
	}
}

func TestReaderGrowth(t *testing.T) {
	t.Run("up to the packet size", func(t *testing.T) {
		pub := rawPublish(0, "t", 0, make([]byte, 3000)) // 3006 bytes
		r := NewReader(bytes.NewReader(cat(pub, pub)), 2048)
		res := readAll(r)
		if res.err != io.EOF || len(res.headers) != 2 {
			t.Fatalf("got %d packets, %v", len(res.headers), res.err)
		}
		if len(r.buf) != len(pub) {
			t.Fatalf("buffer is %d bytes, want the packet size %d", len(r.buf), len(pub))
		}
	})
	t.Run("doubling as bytes arrive", func(t *testing.T) {
		huge := rawPublish(0, "t", 0, make([]byte, 100_000))
		r := NewReader(bytes.NewReader(huge), 1024)
		r.SetMaxPacketSize(0)
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if len(r.buf) != len(huge) {
			t.Fatalf("buffer is %d bytes, want the packet size %d", len(r.buf), len(huge))
		}
	})
	t.Run("declared but not sent", func(t *testing.T) {
		// A peer declares a 1 MiB packet and sends 10,000 bytes of it.
		sent := cat([]byte{0x30, 0xFF, 0xFF, 0x3F}, make([]byte, 10_000-4))
		r := NewReader(bytes.NewReader(sent), 1024)
		r.SetMaxPacketSize(2 << 20)
		if _, _, err := r.Next(); err != io.ErrUnexpectedEOF {
			t.Fatalf("got %v, want unexpected EOF", err)
		}
		if len(r.buf) > 2*len(sent) {
			t.Fatalf("buffer is %d bytes after %d were sent", len(r.buf), len(sent))
		}
	})
}

func TestReaderShrinks(t *testing.T) {
	const size = 1024
	big := rawPublish(0, "t", 0, make([]byte, 50_000))
	ping := []byte{0xC0, 0x00}
	small := rawPublish(0, "t", 0, make([]byte, 100))

	t.Run("after small packets", func(t *testing.T) {
		// The stream arrives in pieces, as from an idle connection: the big
		// packet, then a ping per read.
		pieces := [][]byte{big}
		for range shrinkAfter + 1 {
			pieces = append(pieces, ping)
		}
		r := NewReader(&piecesReader{pieces: pieces}, size)
		r.SetMaxPacketSize(0)
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if len(r.buf) < len(big) {
			t.Fatalf("buffer %d after the big packet", len(r.buf))
		}
		for i := range shrinkAfter {
			if _, _, err := r.Next(); err != nil {
				t.Fatal(err)
			}
			if len(r.buf) != len(big) {
				t.Fatalf("buffer %d after %d small packets: released too early", len(r.buf), i+1)
			}
		}
		// The next read releases the big buffer.
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		if len(r.buf) != size {
			t.Fatalf("buffer %d after %d small packets, want %d", len(r.buf), shrinkAfter+1, size)
		}
	})
	t.Run("kept while big packets stream", func(t *testing.T) {
		var pieces [][]byte
		for range 10 {
			pieces = append(pieces, big, ping, small, ping)
		}
		r := NewReader(&piecesReader{pieces: pieces}, size)
		r.SetMaxPacketSize(0)
		res := readAll(r)
		if res.err != io.EOF || len(res.headers) != 40 {
			t.Fatalf("got %d packets, %v", len(res.headers), res.err)
		}
		if len(r.buf) != len(big) {
			t.Fatalf("buffer %d, want it kept at %d", len(r.buf), len(big))
		}
	})
	t.Run("pending bytes kept", func(t *testing.T) {
		// Shrinking must carry the partial packet over.
		stream := cat(big)
		for range shrinkAfter {
			stream = append(stream, ping...)
		}
		stream = append(stream, small...)
		pieces := [][]byte{stream[:len(stream)-50], stream[len(stream)-50:]}
		r := NewReader(&piecesReader{pieces: pieces}, size)
		r.SetMaxPacketSize(0)
		res := readAll(r)
		if res.err != io.EOF || len(res.headers) != shrinkAfter+2 || !bytes.Equal(res.bodies[shrinkAfter+1], small[2:]) {
			t.Fatalf("got %d packets, %v", len(res.headers), res.err)
		}
		if len(r.buf) != size {
			t.Fatalf("buffer %d, want %d", len(r.buf), size)
		}
	})
}

// piecesReader returns one piece per Read (split further if p is short).
type piecesReader struct {
	pieces [][]byte
}

func (pr *piecesReader) Read(p []byte) (int, error) {
	if len(pr.pieces) == 0 {
		return 0, io.EOF
	}
	n := copy(p, pr.pieces[0])
	pr.pieces[0] = pr.pieces[0][n:]
	if len(pr.pieces[0]) == 0 {
		pr.pieces = pr.pieces[1:]
	}
	return n, nil
}

func TestReaderZeroAllocs(t *testing.T) {
	var stream []byte
	for i := range 100 {
		stream = append(stream, rawPublish(1, "sensors/room/temp", uint16(i+1), []byte("{\"t\":21.5}"))...)
		stream = append(stream, 0x40, 0x02, 0x00, byte(i+1)) // PUBACK
	}
	r := NewReader(&loopReader{data: stream}, 4096)
	allocs := testing.AllocsPerRun(10_000, func() {
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per packet, want 0", allocs)
	}
}

func BenchmarkReaderPublish64(b *testing.B) {
	// A 64-byte QoS 0 PUBLISH: 2 header bytes, 2+12 topic, 48 payload.
	pub := rawPublish(0, "sensors/t/42", 0, bytes.Repeat([]byte{'x'}, 48))
	if len(pub) != 64 {
		b.Fatalf("packet is %d bytes", len(pub))
	}
	r := NewReader(&loopReader{data: bytes.Repeat(pub, 1000)}, 0)
	b.SetBytes(int64(len(pub)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReaderDecodePublish64 is the broker's inbound hot path: read a
// 64-byte v5 PUBLISH and decode it into a reused value.
func BenchmarkReaderDecodePublish64(b *testing.B) {
	// 2 header bytes, 2+12 topic, 1 property length (empty), 47 payload.
	body := appendU16(nil, 12)
	body = append(body, "sensors/t/42"...)
	body = append(body, 0x00)
	body = append(body, bytes.Repeat([]byte{'x'}, 47)...)
	pkt := rawPacket(TypePublish, 0, body)
	if len(pkt) != 64 {
		b.Fatalf("packet is %d bytes", len(pkt))
	}
	r := NewReader(&loopReader{data: bytes.Repeat(pkt, 1000)}, 0)
	var pub Publish
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		h, body, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		if err := pub.Decode(h, body, Version5); err != nil {
			b.Fatal(err)
		}
	}
}

// idleSource returns ErrIdle whenever its script says so, and otherwise
// reads from the next chunk.
type idleSource struct {
	chunks [][]byte // nil entry: return ErrIdle
}

func (s *idleSource) Read(p []byte) (int, error) {
	if len(s.chunks) == 0 {
		return 0, io.EOF
	}
	c := s.chunks[0]
	if c == nil {
		s.chunks = s.chunks[1:]
		return 0, fmt.Errorf("parked: %w", ErrIdle)
	}
	n := copy(p, c)
	if n == len(c) {
		s.chunks = s.chunks[1:]
	} else {
		s.chunks[0] = c[n:]
	}
	return n, nil
}

// ErrIdle from the source is returned by Next but is not sticky, whether it
// comes between packets or inside one; Release drops the buffer only when
// nothing is buffered, and reading goes on after it.
func TestReaderIdleAndRelease(t *testing.T) {
	a := rawPublish(1, "a/b", 7, []byte("first"))
	b := rawPublish(0, "c", 0, []byte("second"))
	src := &idleSource{chunks: [][]byte{a, nil, b[:3], nil, b[3:], nil}}
	r := NewReader(src, 0)
	want := func(pkt []byte) {
		t.Helper()
		h, body, err := r.Next()
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		if got := append(appendHeader(nil, h.Type, h.Flags, h.Remaining), body...); !bytes.Equal(got, pkt) {
			t.Fatalf("packet % x, want % x", got, pkt)
		}
	}
	idle := func() {
		t.Helper()
		if _, _, err := r.Next(); !errors.Is(err, ErrIdle) {
			t.Fatalf("Next = %v, want ErrIdle", err)
		}
	}
	want(a)
	idle()
	if !r.Release() || r.buf != nil {
		t.Fatal("Release with nothing buffered kept the buffer")
	}
	idle() // three bytes of b arrive, then the source is idle again
	if r.Release() || r.Buffered() != 3 {
		t.Fatalf("Release with a partial packet buffered: buffered %d", r.Buffered())
	}
	want(b)
	idle()
	if _, _, err := r.Next(); err != io.EOF {
		t.Fatalf("Next at the end = %v, want io.EOF", err)
	}
}

// A Reader that is released between packets takes a pooled buffer again:
// no allocation per park.
func TestReaderReleaseNoAllocs(t *testing.T) {
	pkt := rawPublish(0, "t", 0, []byte("x"))
	src := &loopSource{pkt: pkt}
	r := NewReader(src, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
		r.Release()
	})
	if allocs > 0 {
		t.Errorf("%.1f allocations per Next+Release", allocs)
	}
}

// loopSource returns one copy of pkt per Read.
type loopSource struct{ pkt []byte }

func (s *loopSource) Read(p []byte) (int, error) { return copy(p, s.pkt), nil }
