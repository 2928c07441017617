// Package pkgtest holds the tests of what deploy/ ships: the systemd unit passes
// systemd-analyze verify, the packaged posd.json parses, and the amd64 .deb that
// `make deb` builds passes lintian without errors.
package pkgtest
