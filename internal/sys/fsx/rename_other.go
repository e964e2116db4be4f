//go:build !linux

package fsx

func renameNoReplace(oldpath, newpath string) error { return linkRename(oldpath, newpath) }
