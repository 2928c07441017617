// Package pkgtest holds the tests of what deploy/ ships: the systemd unit passes
// systemd-analyze verify, the packaged posd.json parses, the amd64 .deb that
// `make deb` builds passes lintian without errors, and the arm64 .deb installs with
// apt into a fresh Debian arm64 root (qemu), where the terminal starts unpaired, is
// paired by scanning its pairing QR and sells (TestArm64InstallAndSell; needs root,
// debootstrap, qemu-user-static and mosquitto).
package pkgtest
