package daemon

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestOnlineGrace(t *testing.T) {
	var up atomic.Bool
	o := newOnlineTracker(up.Load, 200*time.Millisecond)
	if !o.Online() {
		t.Fatal("a fresh start is not given the grace period")
	}
	up.Store(true)
	if !o.Online() {
		t.Fatal("up link reported offline")
	}
	up.Store(false)
	if !o.Online() {
		t.Fatal("a blip shorter than the grace period counts as offline")
	}
	deadline := time.Now().Add(10 * time.Second)
	for o.Online() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if o.Online() {
		t.Fatal("link down beyond the grace period still online")
	}
}
