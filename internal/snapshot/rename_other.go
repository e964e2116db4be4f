//go:build !linux

package snapshot

func renameNoReplace(oldpath, newpath string) error { return linkRename(oldpath, newpath) }
