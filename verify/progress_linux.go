package verify

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// touchedBytes estimates how much of the checked file SQLite has read so
// far. integrity_check reports no progress of its own, but it reads every
// page: through mmap, each page it touches becomes file-backed resident
// memory of this process (RssFile), and pages past the mapped size are
// read(2) (rchar). Both are process totals, so callers use the growth
// since the check started; the estimate is only for a progress line.
func touchedBytes() (int64, bool) {
	rss, ok1 := procField("/proc/self/status", "RssFile:", 1024)
	rchar, ok2 := procField("/proc/self/io", "rchar:", 1)
	return rss + rchar, ok1 || ok2
}

func procField(path, key string, unit int64) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			fields := strings.Fields(v)
			if len(fields) == 0 {
				return 0, false
			}
			n, err := strconv.ParseInt(fields[0], 10, 64)
			return n * unit, err == nil
		}
	}
	return 0, false
}
