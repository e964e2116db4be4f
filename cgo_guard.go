//go:build cgo && !(netgo && osusergo)

package main

// The release promise is one static file that runs on any Linux host.
// With cgo on (the default of go build and go install wherever a C
// compiler is found), os/user (imported by kong) and net (imported by
// github.com/google/uuid, which modernc.org/libc imports) use the C
// library's resolvers, and the binary is linked dynamically against the
// libc of the machine that built it. No code of ours can make such a
// link static without cgo of its own, so the build stops here, naming
// the fix: build with CGO_ENABLED=0 (every command in README.md, the
// scripts and the tests does), or keep cgo and give both pure-Go tags,
// -tags netgo,osusergo, which also gives a static binary.
var _ = build_with_CGO_ENABLED_0_see_README
