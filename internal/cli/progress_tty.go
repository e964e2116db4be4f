package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"sqlite-backup/internal/format/sqlitefile"
	"sqlite-backup/internal/output/progress"
)

// ttyStatus keeps one status line on stderr for the phases of one
// backup or verify of db: copy and verify draw pages done; a phase that
// reports no counts (compress, hash, the end of integrity_check, and
// later uploads) shows its name and a running clock, redrawn by a
// ticker, so no phase over a second leaves the terminal silent. It is
// nil when stderr is not a terminal: cron, systemd and pipes get no
// progress output. All methods are safe on nil.
type ttyStatus struct {
	w        io.Writer
	pageSize int

	mu      sync.Mutex
	line    *progress.Line
	label   string
	note    string    // shown by the ticker while no counts come
	counted time.Time // when counts were last drawn
	stop    chan struct{}
}

func newTTYStatus(stderr io.Writer, db string) *ttyStatus {
	f, ok := terminal(stderr)
	if !ok {
		return nil
	}
	s := &ttyStatus{w: f, pageSize: 4096, stop: make(chan struct{})}
	if fh, err := os.Open(db); err == nil {
		if h, err := sqlitefile.ReadHeader(fh); err == nil {
			s.pageSize = h.PageSize
		}
		fh.Close()
	}
	go s.tick()
	return s
}

// tick redraws a phase without fresh counts every quarter second.
func (s *ttyStatus) tick() {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			if s.line != nil && time.Since(s.counted) > time.Second {
				s.line.Note(s.note)
			}
			s.mu.Unlock()
		}
	}
}

// phase ends the current line and starts one labelled name.
func (s *ttyStatus) phase(name string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.label == name && s.line != nil {
		return
	}
	s.line.Done()
	s.label, s.note, s.counted = name, "", time.Time{}
	s.line = progress.New(s.w, name, s.pageSize)
	s.line.Note(s.note)
}

// pages draws done of total pages in the current phase.
func (s *ttyStatus) pages(done, total int64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.line == nil {
		return
	}
	s.counted = time.Now()
	s.line.Update(done, total)
}

// setNote replaces counts with text for the rest of the phase.
func (s *ttyStatus) setNote(text string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.line == nil {
		return
	}
	s.note, s.counted = text, time.Time{}
	s.line.Note(text)
}

// clear removes the line and stops the ticker, so results and error
// messages start on a clean line.
func (s *ttyStatus) clear() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.line.Done()
	s.line = nil
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
}

// copyProgress, checkProgress and phaseFn are the callbacks snapshot and
// verify take; nil without a terminal.
func (s *ttyStatus) copyProgress() func(done, total int) {
	if s == nil {
		return nil
	}
	return func(done, total int) { s.pages(int64(done), int64(total)) }
}

func (s *ttyStatus) checkProgress(label string) func(done, total int64, finished bool) {
	if s == nil {
		return nil
	}
	return func(done, total int64, finished bool) {
		if label != "" { // "": the check belongs to the current phase
			s.phase(label)
		}
		switch {
		case finished:
		case done >= total:
			// Every page is read; integrity_check is now matching index
			// entries to rows, which has no measurable progress.
			s.setNote(fmt.Sprintf("all %d pages read, still checking", total))
		default:
			s.pages(done, total)
		}
	}
}

// pagesFn draws pages done in the current phase (restore's copies).
func (s *ttyStatus) pagesFn() func(done, total int64) {
	if s == nil {
		return nil
	}
	return s.pages
}

func (s *ttyStatus) phaseFn() func(string) {
	if s == nil {
		return nil
	}
	return s.phase
}

// encryptProgress draws the encryption of the verified copy, which
// reports bytes, in the database's pages.
func (s *ttyStatus) encryptProgress() func(done, total int64) {
	if s == nil {
		return nil
	}
	ps := int64(s.pageSize)
	return func(done, total int64) {
		s.phase("encrypt")
		s.pages(done/ps, total/ps)
	}
}
