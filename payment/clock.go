package payment

import (
	"os"
	"sync"
	"time"
)

// ClockFloor is a time this build cannot predate: a wall clock before it is certainly
// wrong (a Pi without a real-time clock boots in 1970 or at its last shutdown).
var ClockFloor = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// SystemClockSynced returns a check for Config.ClockSynced: the clock counts as
// synchronized when it is past ClockFloor and, where systemd-timesyncd runs, once it
// has written /run/systemd/timesync/synchronized. The files are looked at most once a
// second (the engine asks for every state change; a stat each time showed in
// profiles of a drain).
func SystemClockSynced() func(time.Time) bool {
	var (
		mu      sync.Mutex
		checked time.Time // monotonic reading of the last look
		synced  bool
	)
	return func(now time.Time) bool {
		if now.Before(ClockFloor) {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if checked.IsZero() || time.Since(checked) >= time.Second {
			synced, checked = timesyncdSynced(), time.Now()
		}
		return synced
	}
}

func timesyncdSynced() bool {
	if _, err := os.Stat("/run/systemd/timesync/synchronized"); err == nil {
		return true
	}
	if _, err := os.Stat("/run/systemd/timesync"); err == nil {
		return false // timesyncd runs but has not synchronized yet
	}
	return true
}
