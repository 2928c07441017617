// Package archtest holds tests that keep the repository's shape: every package has a
// doc comment, and imports flow one way as ARCHITECTURE.md describes (paycode and the
// ESC/POS encoder import nothing of ours; scanner, printer and sync never import store
// or payment; only the daemon and the commands import the daemon).
package archtest
