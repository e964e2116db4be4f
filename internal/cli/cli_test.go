package cli

import (
	"errors"
	"fmt"
	"testing"
)

// doneWith names what was done before an error, shortened past five,
// and leaves the error as it is when nothing was.
func TestDoneWith(t *testing.T) {
	base := errors.New("context canceled")
	paths := func(n int) []string {
		var p []string
		for i := range n {
			p = append(p, fmt.Sprintf("/b/app.db.%d", i))
		}
		return p
	}
	for _, c := range []struct {
		n    int
		want string
	}{
		{0, ""},
		{2, "already published: /b/app.db.0, /b/app.db.1"},
		{7, "already published: /b/app.db.0, /b/app.db.1, /b/app.db.2, /b/app.db.3, /b/app.db.4 and 2 more"},
	} {
		err := doneWith(base, "already published", paths(c.n))
		var d *doneBefore
		switch {
		case c.want == "" && (err != base || errors.As(err, &d)):
			t.Errorf("%d paths: %v wrapped, want it as it was", c.n, err)
		case c.want != "" && (!errors.As(err, &d) || d.done != c.want || !errors.Is(err, base)):
			t.Errorf("%d paths: got %#v, want done %q wrapping the error", c.n, err, c.want)
		}
	}
}
