package scanner

import "time"

var testTime = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func timeSeconds(n int) time.Duration { return time.Duration(n) * time.Second }
