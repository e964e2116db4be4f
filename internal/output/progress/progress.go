// Package progress draws one updating status line on a terminal:
// "copy  1234/262144 pages  37%  410 MB/s  ETA 0:02". It redraws in place
// with a carriage return, at most a few times a second, and clears the
// line when a phase ends, so the results printed afterwards (on stdout)
// stay clean. Callers use it only when stderr is a terminal (IsTerminal):
// cron mail and log files get no progress noise.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Line is the status line of one phase (copy, verify).
type Line struct {
	w        io.Writer
	label    string
	pageSize int64
	interval time.Duration
	now      func() time.Time

	mu     sync.Mutex
	start  time.Time
	last   time.Time
	drawn  bool
	closed bool
}

// New returns a line for a phase over pages of pageSize bytes.
func New(w io.Writer, label string, pageSize int) *Line {
	if pageSize <= 0 {
		pageSize = 4096
	}
	return &Line{w: w, label: label, pageSize: int64(pageSize), interval: 200 * time.Millisecond, now: time.Now}
}

// Update reports done of total pages. It is safe to call often and from
// any goroutine; the line is redrawn at most every 200 ms.
func (l *Line) Update(done, total int64) {
	l.draw(done >= total, func(elapsed time.Duration) string {
		return Format(l.label, done, total, l.pageSize, elapsed)
	})
}

// Note shows text instead of counts, with the time since the phase
// started, for stretches whose progress cannot be measured.
func (l *Line) Note(text string) {
	l.draw(false, func(elapsed time.Duration) string {
		return fmt.Sprintf("%-6s %s  %s", l.label, text, clock(elapsed))
	})
}

// draw redraws the line with render's text unless it was drawn less than
// an interval ago; final forces the redraw (the last count of a phase).
func (l *Line) draw(final bool, render func(elapsed time.Duration) string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if l.closed {
		return
	}
	if l.start.IsZero() {
		l.start = now
	}
	if l.drawn && now.Sub(l.last) < l.interval && !final {
		return
	}
	l.last = now
	l.drawn = true
	fmt.Fprint(l.w, "\r"+render(now.Sub(l.start))+"\x1b[K")
}

// Done clears the line.
func (l *Line) Done() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.drawn && !l.closed {
		fmt.Fprint(l.w, "\r\x1b[K")
	}
	l.closed = true
}

// Format renders one status line without terminal control characters.
func Format(label string, done, total, pageSize int64, elapsed time.Duration) string {
	done = max(0, min(done, total))
	s := fmt.Sprintf("%-6s %d/%d pages", label, done, total)
	if total > 0 {
		s += fmt.Sprintf("  %3d%%", done*100/total)
	}
	if elapsed >= 100*time.Millisecond && done > 0 {
		rate := float64(done*pageSize) / elapsed.Seconds()
		s += fmt.Sprintf("  %.0f MB/s", rate/1e6)
		if done < total {
			left := time.Duration(float64(elapsed) * float64(total-done) / float64(done))
			s += "  ETA " + clock(left)
		}
	}
	return s
}

func clock(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool { return isTerminal(f) }
