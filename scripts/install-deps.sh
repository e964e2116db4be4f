#!/usr/bin/env bash
# Installs what the tests use besides Go:
#   sqlite3, sqldiff     independent clients that check our backups
#   qemu-user-static     runs the cross-built release binaries (arm64, arm)
#   systemd-analyze      checks the units `sqlite-backup systemd` prints
#   zsh                  loads the generated completion script
# Idempotent; quiet when all is there already. Needs root (or sudo) on a
# machine that lacks them.
set -euo pipefail
need=()
command -v sqlite3 >/dev/null || need+=(sqlite3)
command -v sqldiff >/dev/null || need+=(sqlite3-tools)
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v zsh >/dev/null || need+=(zsh)
if ((${#need[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  echo "install-deps: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
go mod download
