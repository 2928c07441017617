// Package e2e holds end-to-end tests that run the real binaries — posd and posgw as
// separate processes — against Debian's mosquitto on a free loopback port, the way a
// technician runs them by hand. Without mosquitto the tests skip with an install hint,
// except under CI=true, where they fail.
package e2e
