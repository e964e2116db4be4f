// Package hint attaches a "what to do next" line to an error. Packages
// return hinted errors; only the CLI prints them, as a separate
// "hint: …" line under the error, the way age does.
package hint

import (
	"errors"
	"fmt"
)

// Error is an error with a suggestion for the operator.
type Error struct {
	Err  error
	Hint string
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Wrap returns err with a hint; a nil err stays nil.
func Wrap(err error, format string, a ...any) error {
	if err == nil {
		return nil
	}
	return &Error{Err: err, Hint: fmt.Sprintf(format, a...)}
}

// Of returns the outermost hint in err's chain, or "".
func Of(err error) string {
	var h *Error
	if errors.As(err, &h) {
		return h.Hint
	}
	return ""
}
