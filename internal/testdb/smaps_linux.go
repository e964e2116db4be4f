package testdb

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Smaps returns one "Field: N kB" figure, in bytes, of this process's
// mapping that starts at start, from /proc/self/smaps: tests of the
// memory-map optimizations use it to see what the kernel mapped.
func Smaps(t *testing.T, start uintptr, field string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := fmt.Sprintf("%x-", start)
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		name, rest, ok := strings.Cut(l, ":")
		if !ok || strings.Contains(name, " ") {
			in = strings.HasPrefix(l, head) // a mapping's first line
			continue
		}
		if in && name == field {
			kb, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s for the mapping at %s in /proc/self/smaps", field, head)
	return 0
}
