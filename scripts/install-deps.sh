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
# zstd: the other end of the age tests (age -e | zstd).
command -v zstd >/dev/null || need+=(zstd)
# The remote tests (issue 22) start a real OpenSSH sshd on loopback; the
# ssh client tools make its keys (and SSH recipients for age), and
# sftp/scp and rclone are the baselines of the remote benchmark
# (go run ./bench -remote).
[[ -x /usr/sbin/sshd ]] || need+=(openssh-server)
command -v ssh-keygen >/dev/null && command -v sftp >/dev/null || need+=(openssh-client)
command -v rclone >/dev/null || need+=(rclone)
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
if ((${#need[@]})); then
  echo "install-deps: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
# sshd refuses to start without its privilege separation directory,
# which a container without systemd never creates.
if [[ -x /usr/sbin/sshd && ! -d /run/sshd ]]; then
  $sudo mkdir -p -m 0755 /run/sshd
fi
# versitygw v1.8.0: the S3 server the remote tests start on loopback
# (Apache 2.0; about 6 minutes to build cold). Installed where the tests
# look: $(go env GOPATH)/bin.
gobin=$(go env GOPATH)/bin
if ! go version -m "$gobin/versitygw" 2>/dev/null | grep -Eq '^\s+mod\s+github.com/versity/versitygw\s+v1\.8\.0\s'; then
  echo "install-deps: building versitygw v1.8.0 (a few minutes)" >&2
  GOBIN=$gobin CGO_ENABLED=0 go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
fi
# Litestream v0.5.18: the real CLI the Litestream tests replicate with and
# restore by (issue 31), built static like versitygw (CGO_ENABLED=0: its
# SQLite is modernc's). Apache 2.0; several minutes to build cold.
if ! go version -m "$gobin/litestream" 2>/dev/null | grep -Eq '^\s+mod\s+github.com/benbjohnson/litestream\s+v0\.5\.18\s'; then
  echo "install-deps: building litestream v0.5.18 (a few minutes)" >&2
  GOBIN=$gobin CGO_ENABLED=0 go install github.com/benbjohnson/litestream/cmd/litestream@v0.5.18
fi
go mod download
