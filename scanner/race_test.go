//go:build race

package scanner

// raceEnabled trims the slowest image tests under the race detector, which makes
// gozxing about ten times slower; the full set runs without it and in the benchmarks.
const raceEnabled = true
