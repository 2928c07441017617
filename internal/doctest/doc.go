// Package doctest keeps the commands shown in README.md and docs/*.md true. Its test
// reads every fenced code block, finds each posctl, posd, posgw, posfleet and make
// line, and checks it against the real programs: the make target exists, the
// subcommand exists, and every flag the line uses is one the command defines. Lines
// that need nothing but the binary (decoding a code, rendering a sample receipt, the
// emulator printer) are also run and must exit 0.
//
// # Caveats
//
// Commands that need a running posd, a broker, a database or hardware are checked
// for their subcommand and flags only, not run; README's "Running by hand" path (a
// whole sale through mosquitto, posgw and posd) is exercised by TestRunningByHand.
package doctest
