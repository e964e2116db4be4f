// Package systest holds the system suites: each test runs the real
// sqlite-backup (this test binary, started as a separate process under
// that name) and real writer processes against real SQLite files, real
// servers (OpenSSH sshd, versitygw) and real signals: reliability
// (crash, disk, hostile, load, torture, security, exotic), remotes,
// encryption, restore, end-to-end and the release archives. The
// end-to-end goldens of testdata/script run at the root, against main.
package systest
