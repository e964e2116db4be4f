//go:build linux

package cli

import (
	"bufio"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"sqlite-backup/internal/format/encrypt"
)

// ttyPassphrase asks for an identity file's passphrase on the
// controlling terminal, with echo off, as age does; without a terminal
// (cron, systemd) it is encrypt.ErrNoTerminal.
func ttyPassphrase(name string) ([]byte, error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, encrypt.ErrNoTerminal
	}
	defer tty.Close()
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, encrypt.ErrNoTerminal
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, encrypt.ErrNoTerminal
	}
	defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
	fmt.Fprintf(tty, "Enter passphrase for identity file %q: ", name)
	line, err := bufio.NewReader(tty).ReadBytes('\n')
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %v", err)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}
