package snapshot

import "strconv"

// mmapSize is the mmap_size set on the read-only source: SQLite then
// reads pages straight from the page cache instead of copying each one
// through read(2) into its own cache, and the mapped pages are file
// backed, so they do not count against our memory. SQLite caps it at its
// compile-time maximum (2 GiB minus 64 KiB); pages beyond that are read
// the usual way.
const mmapSize = 1 << 31

func mmapPragma() string { return "mmap_size(" + strconv.FormatInt(mmapSize, 10) + ")" }
