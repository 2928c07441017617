package sync_test

import (
	"fmt"
	"testing"
	"time"

	wsync "github.com/walletless/walletless/sync"
)

// TestBackoffGrowsAndJitters: the base doubles from min to max and stays there,
// every wait is within ±25% of its base, the waits are not all the base itself
// (jitter), and reset starts over.
func TestBackoffGrowsAndJitters(t *testing.T) {
	const lo, hi = 100 * time.Millisecond, 3 * time.Second
	var bases []time.Duration
	b := &wsync.Backoff{Min: lo, Max: hi}
	b.Jitter = func(d time.Duration) time.Duration { bases = append(bases, d); return d }
	for i := 0; i < 8; i++ {
		b.Next()
	}
	want := []time.Duration{lo, 2 * lo, 4 * lo, 8 * lo, 16 * lo, hi, hi, hi}
	if fmt.Sprint(bases) != fmt.Sprint(want) {
		t.Errorf("bases %v, want %v", bases, want)
	}
	b.Reset()
	if b.Next(); bases[len(bases)-1] != lo {
		t.Errorf("after reset the base is %v", bases[len(bases)-1])
	}
	// The real jitter.
	distinct := map[time.Duration]bool{}
	for round := 0; round < 50; round++ {
		b := &wsync.Backoff{Min: lo, Max: hi}
		base := lo
		for i := 0; i < 8; i++ {
			d := b.Next()
			if d < base*3/4 || d > base*5/4 {
				t.Fatalf("wait %v outside ±25%% of %v", d, base)
			}
			if i == 0 {
				distinct[d] = true
			}
			base = min(2*base, hi)
		}
	}
	if len(distinct) < 10 {
		t.Errorf("first waits of 50 backoffs took only %d values: not jittered", len(distinct))
	}
}
