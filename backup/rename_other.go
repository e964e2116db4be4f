//go:build !linux

package backup

func renameNoReplace(oldpath, newpath string) error { return linkRename(oldpath, newpath) }
