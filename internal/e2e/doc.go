// Package e2e holds end-to-end tests that run the real binaries — posd and posgw as
// separate processes — against Debian's mosquitto on a free loopback port, the way a
// technician runs them by hand. Without mosquitto the tests skip with an install hint,
// except under CI=true, where they fail.
//
// # Crash, chaos and power-cut tests
//
// TestCrashSafety, TestPosdKilledWhileDraining and TestDeviceKilledWhileDraining kill
// posd (or a device link) with SIGKILL, aim the kills at states (a call cut mid-way, a
// result still owed, a backlog draining after a restart), count the kills per state
// with t.Logf, and fail when a state was never hit: a kill that always lands while
// posd is idle tests nothing. TestCrashSafety also scans reused one-time codes (they
// must be refused); TestPosdKilledWhileDraining takes sales behind an unreachable
// broker, which the offline policy refuses, and checks that each refused sale is one
// audit record in posgw's ledger and never a payment.
//
// The chaos tests check that posgw decides each key exactly once: its decision count
// equals the number of sales, and a resent sale is answered with the stored decision
// (same decided_at), not a new one.
//
// TestPowerCut puts posd's data directory on internal/lazyfs and cuts the power after
// each kill: writes that were not fsynced are gone, and every sale the API
// acknowledged must survive. It needs FUSE (apt-get install fuse3, root); it skips
// without, except under CI=true.
//
// make mutants (scripts/mutants.sh) breaks each of these invariants in a copy of the
// tree and checks that these tests fail.
package e2e
