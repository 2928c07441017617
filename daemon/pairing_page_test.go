package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestUnpairedPageInTheBrowser: an unpaired terminal's counter page is the full-screen
// "not paired" message (no keypad, no sign-in), shows a refused scan, and turns into
// the counter's sign-in by itself once a pairing QR pairs the terminal.
func TestUnpairedPageInTheBrowser(t *testing.T) {
	ctx := browser(t)
	shots := artifacts(t)
	f := newTestFleet(t)
	u, info := startUnpaired(t, t.TempDir(), []string{f.pub.String()})
	defer u.shutdown()
	run(t, ctx, "open the page", chromedp.Navigate(info.PageURL), chromedp.WaitVisible(chromedp.CSS("#unpaired")))
	heading := get(t, ctx, "heading", chromedp.Text(chromedp.CSS("#unpaired-h")))
	needs := get(t, ctx, "needs", chromedp.Text(chromedp.CSS("#unpaired-needs")))
	counterHidden := get(t, ctx, "counter", eval[bool](`document.getElementById('counter').hidden && document.getElementById('keypad').offsetParent === null`))
	signinHidden := get(t, ctx, "sign-in", eval[bool](`document.getElementById('signin').hidden`))
	if heading != "Not paired yet" || !strings.Contains(needs, "pairing QR") || !counterHidden || !signinHidden {
		t.Fatalf("unpaired page: %q %q counter hidden %v sign-in hidden %v", heading, needs, counterHidden, signinHidden)
	}
	shot(t, ctx, shots, "unpaired")
	// A payment code scanned while unpaired: the page says why nothing happens.
	u.feed("281234567890123456")
	run(t, ctx, "refusal shown", chromedp.WaitVisible(chromedp.CSS("#unpaired-error")))
	if msg := get(t, ctx, "refusal", chromedp.Text(chromedp.CSS("#unpaired-error"))); !strings.Contains(msg, "not paired yet") {
		t.Fatalf("refusal on the page: %q", msg)
	}
	shot(t, ctx, shots, "unpaired-refused")
	// The pairing QR: the page reloads into the counter's sign-in.
	good, _ := f.qr(t, f.priv, "shop-1", time.Now(), time.Hour)
	u.feed(good)
	u.waitReady()
	run(t, ctx, "sign-in after pairing", chromedp.WaitVisible(chromedp.CSS("#pinform")))
	if get(t, ctx, "unpaired hidden", eval[bool](`document.getElementById('unpaired').hidden`)) != true {
		t.Fatal("the unpaired message stays after pairing")
	}
	shot(t, ctx, shots, "paired-signin")
}
