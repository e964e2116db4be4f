package litestream

import (
	"encoding/binary"
	"fmt"
	"io"

	"github.com/superfly/ltx"
)

// guard sits between a foreign LTX file and ltx's Decoder and follows
// the file's frames as their bytes pass. The decoder allocates a buffer
// of whatever size a page frame's 4-byte size field says (up to 4 GiB)
// before reading it; guard fails the read that would deliver a size
// larger than LZ4's bound for one page, so the decoder never sees it.
// It also bounds the page size by the header before the decoder reads
// one (ltx validates it too). Frames of the old LZ4-frame encoding
// (before ltx v0.5.2) carry no size; from the first of those guard
// only passes bytes on, the LZ4 reader's own buffers being bounded.
type guard struct {
	r     io.Reader
	state int
	buf   [ltx.HeaderSize]byte
	have  int   // bytes of the current field collected
	skip  int64 // payload bytes still to pass
	bound int64 // largest page frame payload
	err   error
}

const (
	gHeader = iota
	gPageHeader
	gSize
	gData
	gPass
)

func newGuard(r io.Reader) *guard { return &guard{r: r} }

func (g *guard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	if g.state != gPass {
		if perr := g.follow(p[:n]); perr != nil {
			g.err = perr
			return 0, perr
		}
	}
	return n, err
}

// follow advances the frame state over b.
func (g *guard) follow(b []byte) error {
	for len(b) > 0 && g.state != gPass {
		switch g.state {
		case gData:
			k := min(int64(len(b)), g.skip)
			g.skip -= k
			b = b[k:]
			if g.skip == 0 {
				g.state, g.have = gPageHeader, 0
			}
			continue
		}
		want := 4
		switch g.state {
		case gHeader:
			want = ltx.HeaderSize
		case gPageHeader:
			want = ltx.PageHeaderSize
		}
		k := copy(g.buf[g.have:want], b)
		g.have += k
		b = b[k:]
		if g.have < want {
			return nil
		}
		g.have = 0
		switch g.state {
		case gHeader:
			var h ltx.Header
			if err := h.UnmarshalBinary(g.buf[:ltx.HeaderSize]); err != nil {
				return fmt.Errorf("ltx header: %w", err)
			}
			if !ltx.IsValidPageSize(h.PageSize) {
				return fmt.Errorf("ltx header: invalid page size %d", h.PageSize)
			}
			// LZ4's worst case for incompressible input (LZ4_COMPRESSBOUND).
			g.bound = int64(h.PageSize) + int64(h.PageSize)/255 + 16
			g.state = gPageHeader
		case gPageHeader:
			var ph ltx.PageHeader
			if err := ph.UnmarshalBinary(g.buf[:ltx.PageHeaderSize]); err != nil {
				return fmt.Errorf("ltx page header: %w", err)
			}
			switch {
			case ph.IsZero():
				g.state = gPass // the page index and trailer: streamed, bounded
			case ph.Flags&ltx.PageHeaderFlagSize != 0:
				g.state = gSize
			default:
				g.state = gPass // old LZ4-frame encoding
			}
		case gSize:
			sz := int64(binary.BigEndian.Uint32(g.buf[:4]))
			if sz == 0 || sz > g.bound {
				return fmt.Errorf("ltx page frame of %d bytes (at most %d for a page)", sz, g.bound)
			}
			g.skip, g.state = sz, gData
		}
	}
	return nil
}
