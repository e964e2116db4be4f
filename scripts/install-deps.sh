#!/usr/bin/env bash
# Installs what the tests use besides Go (each line says why). Idempotent;
# quiet when all is there already. Needs root (or sudo) on a machine that
# lacks them.
set -euo pipefail
need=()
# The C sqlite3 CLI and sqldiff: independent clients that check our backups.
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v sqldiff >/dev/null || need+=(sqlite3-tools)
# qemu-user runs the cross-built release binaries (arm64, arm).
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
# systemd-analyze checks the units `sqlite-backup systemd` prints.
command -v systemd-analyze >/dev/null || need+=(systemd)
# zsh loads the generated completion script.
command -v zsh >/dev/null || need+=(zsh)
# prlimit sets RLIMIT_FSIZE on the tool in the disk-full test.
command -v prlimit >/dev/null || need+=(util-linux)
# strace shows the tool never starts another program (a security test).
command -v strace >/dev/null || need+=(strace)
# The age CLI decrypts what the tool encrypts, and encrypts what it
# restores (an independent client for internal/format/encrypt).
command -v age >/dev/null || need+=(age)
# zstd and ssh-keygen: the other ends of the age tests (age -e | zstd,
# SSH recipients).
command -v zstd >/dev/null || need+=(zstd)
command -v ssh-keygen >/dev/null || need+=(openssh-client)
if ((${#need[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "install-deps: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
go mod download
