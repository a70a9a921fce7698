package protocol

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// Reader buffer sizes and limits.
const (
	// DefaultReaderSize is the initial buffer size NewReader uses for a size
	// of 0: room for dozens of small packets per read system call.
	DefaultReaderSize = 4096

	// DefaultMaxPacketSize is the packet size limit of a new Reader until
	// SetMaxPacketSize changes it. It is deliberately modest: a peer must
	// not be able to make the receiver allocate hundreds of megabytes by
	// declaring a large Remaining Length.
	DefaultMaxPacketSize = 1 << 20

	// maxPacketSize is the largest packet the protocol can express: a type
	// byte, a four-byte Remaining Length and MaxRemainingLength bytes.
	maxPacketSize = 1 + 4 + MaxRemainingLength

	// minReaderSize is the smallest buffer a Reader uses; it holds a whole
	// fixed header (at most five bytes) and a few small packets.
	minReaderSize = 64

	// shrinkAfter is the number of consecutive packets no larger than the
	// initial buffer size after which a grown buffer is released (see
	// Reader).
	shrinkAfter = 4

	// maxEmptyReads is how many (0, nil) results of the underlying reader in
	// a row end the stream with io.ErrNoProgress, as bufio does.
	maxEmptyReads = 100
)

// errNegativeRead reports an io.Reader that returned an impossible count.
var errNegativeRead = errors.New("read packet: reader returned invalid count")

// ErrIdle is what a Reader's source returns (possibly wrapped) to say that
// it has no bytes now and the caller should come back later, for example
// when a connection is about to be parked. Unlike every other error it is
// not sticky: Next returns it with no packet, keeps what it holds, and a
// later Next carries on.
var ErrIdle = errors.New("read packet: source idle")

// readerPool holds buffers of DefaultReaderSize given back by Release.
var readerPool = sync.Pool{New: func() any { return new([DefaultReaderSize]byte) }}

// Reader splits a byte stream (a net.Conn, a TLS or WebSocket stream) into
// MQTT control packets. It reads in large chunks, so that several small
// packets arriving together cost one read call, and reuses its buffer:
// in steady state Next does not allocate.
//
// A Reader is not safe for concurrent use: one goroutine (the connection's
// reader goroutine) calls Next, SetMaxPacketSize and Buffered.
//
// Buffer policy. The buffer starts at the size given to NewReader.
// Consumed bytes are compacted away before each read, so each read gets all
// the free space. A packet larger than the buffer grows it, but only as its
// bytes arrive: when the buffer is full the buffer doubles, up to the
// packet's size and no further. Since the declared size is compared with
// the maximum first, the buffer never exceeds max(initial size, maximum
// packet size), and a peer that declares a large packet and sends little of
// it makes the Reader hold no more than max(initial size, twice what it
// sent).
//
// A grown buffer is released: once shrinkAfter (4) packets in a row have
// fit in the initial size, the next time Next must read from the stream
// (and the bytes it holds fit in the initial size), it moves them into a
// buffer of the initial size and drops the large one. So a connection that
// received one big PUBLISH and then went idle gives the memory back after a
// few small packets (PINGREQs at the keep alive interval, at the latest),
// while a connection that streams big packets, even interleaved with small
// ones, keeps its large buffer instead of reallocating it per packet.
//
// An idle connection need not hold a buffer at all: Release gives it back
// when nothing is buffered (to a shared pool, for the default size), and
// the next read takes one again.
type Reader struct {
	r    io.Reader
	buf  []byte
	head int // start of the unread bytes in buf
	tail int // end of the bytes read into buf

	size  int // initial buffer size, the size a grown buffer shrinks back to
	max   int // packet size limit, fixed header included
	small int // consecutive packets of at most size bytes, up to shrinkAfter

	rerr error // error from the underlying reader, reported once buffered packets are returned
	err  error // sticky error returned by Next
}

// NewReader returns a Reader of r with an initial buffer of size bytes
// (DefaultReaderSize if size is 0; sizes below 64 are raised to 64) and a
// packet size limit of DefaultMaxPacketSize.
func NewReader(r io.Reader, size int) *Reader {
	if size == 0 {
		size = DefaultReaderSize
	}
	size = max(size, minReaderSize)
	return &Reader{r: r, buf: newReaderBuf(size), size: size, max: DefaultMaxPacketSize}
}

func newReaderBuf(size int) []byte {
	if size == DefaultReaderSize {
		return readerPool.Get().(*[DefaultReaderSize]byte)[:]
	}
	return make([]byte, size)
}

// Release gives the buffer back if nothing is buffered, and reports whether
// it did; the next Next takes a buffer again when it has to read. Call it
// when the stream is expected to stay quiet for a while (a connection about
// to be parked), so that an idle Reader holds no buffer.
func (r *Reader) Release() bool {
	if r.head != r.tail {
		return false
	}
	if len(r.buf) == DefaultReaderSize && r.size == DefaultReaderSize {
		readerPool.Put((*[DefaultReaderSize]byte)(r.buf))
	}
	r.buf, r.head, r.tail, r.small = nil, 0, 0, 0
	return true
}

// SetMaxPacketSize sets the limit on the size of the packets Next returns:
// the whole packet, fixed header included, as the v5 Maximum Packet Size
// counts it (sections 2.1.4, 3.1.2.11.4, 3.2.2.3.6). n <= 0 means no limit
// other than the protocol's (268,435,460 bytes). It applies from the next
// packet Next parses, including packets already buffered.
//
// A server starts with a small limit before CONNECT and raises it to the
// Maximum Packet Size it announces in CONNACK; a client sets the one it
// sent in CONNECT.
func (r *Reader) SetMaxPacketSize(n int) {
	if n <= 0 || n > maxPacketSize {
		n = maxPacketSize
	}
	r.max = n
}

// MaxPacketSize returns the current packet size limit.
func (r *Reader) MaxPacketSize() int { return r.max }

// Buffered returns the number of bytes read from the stream but not yet
// returned by Next. A connection can use Buffered() > 0 to keep batching
// its replies while more packets are already at hand.
func (r *Reader) Buffered() int { return r.tail - r.head }

// Next returns the next packet: its fixed header and its body, the
// h.Remaining bytes after the fixed header. The body aliases the Reader's
// buffer and is valid only until the next call of Next; its capacity is its
// length, so appending to it never overwrites the following packet.
//
// Next checks the fixed header (ParseHeader: reserved flag bits, QoS 3, a
// Remaining Length longer than four bytes) and compares the declared packet
// size with the limit before it reads or allocates anything for the body.
// Errors:
//   - io.EOF when the stream ends cleanly at a packet boundary;
//   - io.ErrUnexpectedEOF when it ends inside a packet;
//   - an error wrapping ReasonPacketTooLarge for a packet over the limit.
//     In v5 the Maximum Packet Size is binding on the sender: a server
//     receiving a larger packet answers DISCONNECT (or CONNACK, for an
//     oversized CONNECT) with 0x95 [MQTT-3.2.2-15], a client does the same
//     for a server's packet [MQTT-3.1.2-24] (v5 numbering), section 4.13.
//     3.1.1 has no such limit; its receiver just closes the connection;
//   - an error wrapping ReasonMalformedPacket for a bad fixed header;
//   - the underlying reader's error, unwrapped (a deadline error, say),
//     once every packet that arrived before it has been returned.
//
// Errors are sticky: after one, every call returns the same error.
func (r *Reader) Next() (Header, []byte, error) {
	if r.err != nil {
		return Header{}, nil, r.err
	}
	for {
		avail := r.buf[r.head:r.tail]
		h, hl, err := ParseHeader(avail)
		need := len(avail) + 1 // an incomplete fixed header needs at least one more byte
		switch {
		case err == nil:
			need = hl + h.Remaining
			if need > r.max {
				// Checked before the body is read or any buffer grown.
				// v5 [MQTT-3.2.2-15] (server side), [MQTT-3.1.2-24] (client side), 4.13
				return r.fail(fmt.Errorf("read packet: %s of %d bytes exceeds maximum packet size %d: %w",
					h.Type, need, r.max, ReasonPacketTooLarge))
			}
			if need <= len(avail) {
				r.head += need
				if need > r.size {
					r.small = 0
				} else if r.small < shrinkAfter {
					r.small++
				}
				return h, avail[hl:need:need], nil
			}
		case err != ErrIncomplete:
			return r.fail(fmt.Errorf("read packet: %w", err))
		}
		if err := r.fill(need); err != nil {
			if errors.Is(err, ErrIdle) {
				return Header{}, nil, err // not sticky: see ErrIdle
			}
			return r.fail(err)
		}
	}
}

func (r *Reader) fail(err error) (Header, []byte, error) {
	r.err = err
	return Header{}, nil, err
}

// fill reads until the buffer holds need bytes of the current packet, which
// starts at r.head. need is at most r.max (or at most five bytes while the
// fixed header is incomplete). It returns nil after a read error that came
// with enough data, keeping the error for the next call.
func (r *Reader) fill(need int) error {
	n := r.tail - r.head
	switch {
	case r.buf == nil:
		r.buf = newReaderBuf(r.size) // released while idle; empty (n == 0)
	case len(r.buf) > r.size && r.small >= shrinkAfter && need <= r.size:
		// Release a grown buffer (see the buffer policy on Reader).
		b := make([]byte, r.size)
		copy(b, r.buf[r.head:r.tail])
		r.buf = b
		r.small = 0
	case r.head > 0:
		// Compact so that the read gets all the free space.
		copy(r.buf, r.buf[r.head:r.tail])
	}
	r.head, r.tail = 0, n
	empty := 0
	for r.tail < need {
		if r.rerr != nil {
			if r.rerr == io.EOF {
				if r.tail == 0 {
					return io.EOF
				}
				return io.ErrUnexpectedEOF
			}
			return r.rerr
		}
		if r.tail == len(r.buf) {
			// Full, and the packet needs more: double, up to the packet's
			// size. Growing only as bytes arrive keeps the memory a peer
			// can make us hold proportional to what it actually sent.
			b := make([]byte, min(2*len(r.buf), need))
			copy(b, r.buf[:r.tail])
			r.buf = b
		}
		m, err := r.r.Read(r.buf[r.tail:])
		if m < 0 || m > len(r.buf)-r.tail {
			return errNegativeRead
		}
		r.tail += m
		if err != nil && errors.Is(err, ErrIdle) {
			return err
		}
		r.rerr = err
		if m > 0 {
			empty = 0
		} else if err == nil {
			if empty++; empty >= maxEmptyReads {
				r.rerr = io.ErrNoProgress
			}
		}
	}
	return nil
}
