package sqlitefile

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// This file reads the two WAL-mode files as SQLite's walformat document
// describes them: the write-ahead log (<db>-wal) and the first bytes of
// its index (<db>-shm). Backup uses them to copy a WAL database's pages
// straight from the files while a SQLite read transaction pins them.

// WALIndexSize is how much of the -shm ReadWALIndex needs: two copies of
// the index header and the checkpoint information after them.
const WALIndexSize = 136

// WALIndex is the wal-index header (the state of the WAL as of its last
// commit) and the checkpoint progress, as found in <db>-shm.
type WALIndex struct {
	// Header is the raw 48-byte header: two equal readings of it mean no
	// commit, checkpoint restart or recovery happened in between.
	Header    [48]byte
	PageSize  int
	MaxFrame  uint32 // last valid commit frame in the WAL
	Pages     uint32 // database size in pages after that commit
	Salt      [8]byte
	Checksum  [2]uint32 // running checksum after frame MaxFrame
	BigEndian bool      // frame checksums use big-endian words
	// Backfilled is how many frames a checkpoint has copied back into
	// the database file (nBackfill).
	Backfilled uint32
}

// ParseWALIndex decodes the start of a -shm file. The index is in the
// host's byte order. It fails unless both copies of the header agree,
// the header is initialised and its checksum holds: a reader that sees
// anything else must not trust it.
func ParseWALIndex(b []byte) (WALIndex, error) {
	var w WALIndex
	if len(b) < WALIndexSize {
		return w, errors.New("wal-index too short")
	}
	ne := binary.NativeEndian
	if !bytes.Equal(b[:48], b[48:96]) {
		return w, errors.New("wal-index header copies differ (a commit in progress)")
	}
	if v := ne.Uint32(b[0:4]); v != 3007000 {
		return w, fmt.Errorf("wal-index version %d, want 3007000", v)
	}
	if b[12] != 1 {
		return w, errors.New("wal-index not initialised")
	}
	s0, s1 := walChecksum(ne, b[0:40], 0, 0)
	if s0 != ne.Uint32(b[40:44]) || s1 != ne.Uint32(b[44:48]) {
		return w, errors.New("wal-index header checksum mismatch")
	}
	copy(w.Header[:], b[:48])
	w.BigEndian = b[13] != 0
	sz := int(ne.Uint16(b[14:16]))
	w.PageSize = sz&0xfe00 | (sz&1)<<16
	w.MaxFrame = ne.Uint32(b[16:20])
	w.Pages = ne.Uint32(b[20:24])
	w.Checksum = [2]uint32{ne.Uint32(b[24:28]), ne.Uint32(b[28:32])}
	copy(w.Salt[:], b[32:40])
	w.Backfilled = ne.Uint32(b[96:100])
	return w, nil
}

// ReadWALIndex reads the start of an open -shm file.
func ReadWALIndex(shm io.ReaderAt) (WALIndex, error) {
	b := make([]byte, WALIndexSize)
	if n, err := shm.ReadAt(b, 0); n < len(b) {
		if err == nil || err == io.EOF {
			err = errors.New("wal-index too short")
		}
		return WALIndex{}, err
	}
	return ParseWALIndex(b)
}

// walChecksum is SQLite's WAL checksum: a running pair of sums over
// 32-bit words in the given byte order, continued from s0, s1.
func walChecksum(order binary.ByteOrder, b []byte, s0, s1 uint32) (uint32, uint32) {
	for i := 0; i+8 <= len(b); i += 8 {
		s0 += order.Uint32(b[i:]) + s1
		s1 += order.Uint32(b[i+4:]) + s0
	}
	return s0, s1
}

const (
	walHeaderSize      = 32
	walFrameHeaderSize = 24
)

// WALFrames reads frames 1..idx.MaxFrame of the WAL and returns, for
// every page they hold, the file offset of its newest page image. It
// checks what SQLite checks when it recovers a WAL, and more: the WAL
// header's magic, page size, salt and checksum, each frame's salt, the
// unbroken checksum chain, and that the last frame is the commit frame
// the index names, with its checksum and database size. A WAL that does
// not prove to be exactly the one idx describes is an error.
func WALFrames(wal io.ReaderAt, idx WALIndex) (map[uint32]int64, error) {
	frames := make(map[uint32]int64)
	if idx.MaxFrame == 0 {
		return frames, nil
	}
	hdr := make([]byte, walHeaderSize)
	if _, err := wal.ReadAt(hdr, 0); err != nil {
		return nil, fmt.Errorf("read wal header: %w", err)
	}
	be := binary.BigEndian
	magic := be.Uint32(hdr[0:4])
	if magic&^1 != 0x377f0682 {
		return nil, fmt.Errorf("bad wal magic %#x", magic)
	}
	var order binary.ByteOrder = binary.LittleEndian
	if magic&1 == 1 {
		order = binary.BigEndian
	}
	if (magic&1 == 1) != idx.BigEndian {
		return nil, errors.New("wal checksum byte order differs from the wal-index")
	}
	if v := be.Uint32(hdr[4:8]); v != 3007000 {
		return nil, fmt.Errorf("wal format version %d, want 3007000", v)
	}
	if ps := int(be.Uint32(hdr[8:12])); ps != idx.PageSize {
		return nil, fmt.Errorf("wal page size %d, wal-index says %d", ps, idx.PageSize)
	}
	if !bytes.Equal(hdr[16:24], idx.Salt[:]) {
		return nil, errors.New("wal salt differs from the wal-index (the wal was restarted)")
	}
	s0, s1 := walChecksum(order, hdr[:24], 0, 0)
	if s0 != be.Uint32(hdr[24:28]) || s1 != be.Uint32(hdr[28:32]) {
		return nil, errors.New("wal header checksum mismatch")
	}

	frameSize := int64(walFrameHeaderSize + idx.PageSize)
	r := bufio.NewReaderSize(io.NewSectionReader(wal, walHeaderSize, int64(idx.MaxFrame)*frameSize), 1<<20)
	buf := make([]byte, frameSize)
	var commit uint32
	for i := uint32(1); i <= idx.MaxFrame; i++ {
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("read wal frame %d: %w", i, err)
		}
		fh := buf[:walFrameHeaderSize]
		if !bytes.Equal(fh[8:16], idx.Salt[:]) {
			return nil, fmt.Errorf("wal frame %d: salt mismatch", i)
		}
		s0, s1 = walChecksum(order, fh[:8], s0, s1)
		s0, s1 = walChecksum(order, buf[walFrameHeaderSize:], s0, s1)
		if s0 != be.Uint32(fh[16:20]) || s1 != be.Uint32(fh[20:24]) {
			return nil, fmt.Errorf("wal frame %d: checksum mismatch", i)
		}
		pgno := be.Uint32(fh[0:4])
		if pgno == 0 {
			return nil, fmt.Errorf("wal frame %d: page number 0", i)
		}
		frames[pgno] = walHeaderSize + int64(i-1)*frameSize + walFrameHeaderSize
		commit = be.Uint32(fh[4:8])
	}
	if commit == 0 {
		return nil, fmt.Errorf("wal frame %d is not a commit frame", idx.MaxFrame)
	}
	if commit != idx.Pages {
		return nil, fmt.Errorf("wal commit frame says %d pages, wal-index %d", commit, idx.Pages)
	}
	if s0 != idx.Checksum[0] || s1 != idx.Checksum[1] {
		return nil, errors.New("wal checksum after the last commit differs from the wal-index")
	}
	return frames, nil
}
