package daemon

import (
	"bytes"
	"context"
	"fmt"
	"image"
	_ "image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/config"
)

// browser starts Debian's chromium headless with a fresh profile. Without chromium
// the test fails under CI=true and is skipped elsewhere.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is missing: apt-get install -y chromium")
		}
		t.Skip("chromium is missing: apt-get install -y chromium")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 1300),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelB := chromedp.NewContext(actx)
	// The first action starts the browser, which lives as long as that context.
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		cancelB()
		cancelA()
		t.Fatalf("chromium did not start: %v", err)
	}
	ctx, cancelC := context.WithTimeout(bctx, 3*time.Minute)
	t.Cleanup(func() { cancelC(); cancelB(); cancelA() })
	return ctx
}

// artifacts is where screenshots go: $WALLETLESS_ARTIFACTS/<test>, or a temp dir.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if base := os.Getenv("WALLETLESS_ARTIFACTS"); base != "" {
		dir = filepath.Join(base, t.Name())
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

func shot(t *testing.T, ctx context.Context, dir, name string) []byte {
	t.Helper()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
		t.Fatal(err)
	}
	return buf
}

func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// get runs one action that returns a value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

func eval[T any](expr string) chromedp.Action[T] { return chromedp.Evaluate[T](expr) }

// signInWithPIN gives name a PIN through the API and signs in on the page with it.
func signInWithPIN(t *testing.T, ctx context.Context, tp *thinPath, name, role string) {
	t.Helper()
	if code, m := tp.do("POST", "/v1/pins", fmt.Sprintf(`{"name": %q, "role": %q, "pin": "482913"}`, name, role)); code != http.StatusCreated {
		t.Fatalf("set PIN: %d %v", code, m)
	}
	run(t, ctx, "sign in",
		chromedp.Navigate(tp.api+"/"),
		chromedp.WaitVisible(chromedp.CSS("#pinform")),
		chromedp.SendKeys(chromedp.CSS("#name"), name),
		chromedp.SendKeys(chromedp.CSS("#pin"), "482913"),
		chromedp.Click(chromedp.CSS("#pinform button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#counter")),
	)
}

// typeAmount presses the keypad's keys.
func typeAmount(t *testing.T, ctx context.Context, digits string) string {
	t.Helper()
	acts := []chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS(`#keypad button[data-key="C"]`))}
	for _, d := range digits {
		acts = append(acts, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#keypad button[data-key="%c"]`, d))))
	}
	run(t, ctx, "keypad", acts...)
	return get(t, ctx, "amount", chromedp.Text(chromedp.CSS("#amount")))
}

func waitState(t *testing.T, ctx context.Context, status string) string {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 40*time.Second)
	defer cancel()
	if err := chromedp.Do(wctx, chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#state[data-status=%q]`, status)))); err != nil {
		buf, _ := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		failed := filepath.Join(t.TempDir(), "failed.png")
		if base := os.Getenv("WALLETLESS_ARTIFACTS"); base != "" {
			failed = filepath.Join(base, t.Name()+"-failed.png")
		}
		_ = os.WriteFile(failed, buf, 0o644)
		state, _ := chromedp.Run(ctx, eval[string](`document.getElementById('state').dataset.status + ' / ' + document.getElementById('toast').textContent`))
		t.Fatalf("the page never showed %s (it shows %q; screenshot %s): %v", status, state, failed, err)
	}
	return get(t, ctx, "state", chromedp.Text(chromedp.CSS("#state")))
}

func pageSaleID(t *testing.T, ctx context.Context) string {
	t.Helper()
	return get(t, ctx, "sale id", eval[string](`document.getElementById('sale').dataset.id`))
}

// TestPageWholeSale runs posd in demo mode and sells through the page: PIN sign-in,
// the keypad, the scan through the counter's scanner (stdin), approved live by
// Server-Sent Events; then a declined sale through the page's code field with the
// demo customer's fresh code; reprint and today's list.
func TestPageWholeSale(t *testing.T) {
	ctx := browser(t)
	dir := artifacts(t)
	tp := startPosd(t, t.TempDir(), "tcp://127.0.0.1:1", true, nil)
	defer tp.shutdown()
	signInWithPIN(t, ctx, tp, "kim", "clerk")
	shot(t, ctx, dir, "01-signed-in")

	if shown := typeAmount(t, ctx, "12000"); shown != "₩12,000" {
		t.Fatalf("keypad shows %q, want ₩12,000", shown)
	}
	run(t, ctx, "charge", chromedp.Click(chromedp.CSS("#charge-scan")))
	waitState(t, ctx, "waiting_for_code")
	shot(t, ctx, dir, "02-waiting-for-code")
	id := pageSaleID(t, ctx)
	code := sampleCode()
	fmt.Fprintln(tp.scan, code) // the counter's scanner
	if head := waitState(t, ctx, "approved"); head != "Approved" {
		t.Fatalf("state heading %q", head)
	}
	next := get(t, ctx, "next step", chromedp.Text(chromedp.CSS("#next")))
	if !strings.Contains(next, "Hand over the goods") {
		t.Fatalf("next step %q", next)
	}
	shot(t, ctx, dir, "03-approved")
	if _, m := tp.do("GET", "/v1/sales/"+id, ""); m["status"] != "approved" || m["amount_minor"] != float64(12000) || m["currency"] != "KRW" {
		t.Fatalf("the API says %v", m)
	}
	html := get(t, ctx, "page text", chromedp.OuterHTML(chromedp.CSS("html")))
	if strings.Contains(html, code) || strings.Contains(html, tp.info.Token) {
		t.Fatal("the page shows the full code or a token")
	}

	// The same code scanned again for the next sale: the counter's scanner refuses
	// it, and the page says why, live.
	run(t, ctx, "next sale", chromedp.Click(chromedp.CSS("#newsale")))
	typeAmount(t, ctx, "5000")
	run(t, ctx, "charge", chromedp.Click(chromedp.CSS("#charge-scan")))
	waitState(t, ctx, "waiting_for_code")
	fmt.Fprintln(tp.scan, code)
	run(t, ctx, "refused scan banner", chromedp.WaitVisible(chromedp.CSS("#refused")))
	if msg := get(t, ctx, "banner", chromedp.Text(chromedp.CSS("#refused-text"))); !strings.Contains(msg, "already used") || !strings.Contains(msg, "refresh") {
		t.Fatalf("refused-scan banner %q", msg)
	}
	shot(t, ctx, dir, "03b-code-already-used")
	run(t, ctx, "dismiss", chromedp.Click(chromedp.CSS("#refused-ok")), chromedp.Click(chromedp.CSS("#cancel")))
	waitState(t, ctx, "cancelled")

	// Declined: above posgw's limit, the code typed into the page (the register's
	// own scanner path) from the demo customer.
	run(t, ctx, "new sale", chromedp.Click(chromedp.CSS("#newsale")))
	typeAmount(t, ctx, "2000000")
	run(t, ctx, "charge", chromedp.Click(chromedp.CSS("#charge-scan")))
	waitState(t, ctx, "waiting_for_code")
	run(t, ctx, "demo customer", chromedp.Click(chromedp.CSS("#demo-btn")),
		chromedp.Poll[chromedp.Void](`document.getElementById('code').value.length > 0`))
	demo1 := get(t, ctx, "code", chromedp.Value(chromedp.CSS("#code")))
	run(t, ctx, "demo customer again", chromedp.Click(chromedp.CSS("#demo-btn")),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.getElementById('code').value !== %q`, demo1)))
	demo2 := get(t, ctx, "code", chromedp.Value(chromedp.CSS("#code")))
	if demo1 == "" || demo1 == demo2 || demo1 == code {
		t.Fatalf("demo customer codes %q then %q (after %q): want a fresh one each time", demo1, demo2, code)
	}
	run(t, ctx, "apply code", chromedp.Click(chromedp.CSS("#codeform button[type=submit]")))
	if head := waitState(t, ctx, "declined"); head != "Declined" {
		t.Fatalf("declined heading %q", head)
	}
	shot(t, ctx, dir, "04-declined")
	// Today's list follows the events: both sales appear without a reload.
	run(t, ctx, "today's list", chromedp.Poll[chromedp.Void](`document.querySelectorAll('#today-rows tr[data-id]').length === 3`))
}

// TestPageManagerDay: a manager refunds part of an approved sale in the page's
// dialog, reprints, and closes the batch with its Z report.
func TestPageManagerDay(t *testing.T) {
	ctx := browser(t)
	dir := artifacts(t)
	tp := startPosd(t, t.TempDir(), "tcp://127.0.0.1:1", true, nil)
	defer tp.shutdown()
	sale := tp.sale(12000, "KRW", sampleCode())
	id := sale["id"].(string)
	signInWithPIN(t, ctx, tp, "boss", "manager")
	row := fmt.Sprintf(`#today-rows tr[data-id=%q]`, id)
	run(t, ctx, "reprint",
		chromedp.WaitVisible(chromedp.CSS(row+" button:nth-of-type(1)")),
		chromedp.Click(chromedp.CSS(row+" button:nth-of-type(1)")),
		chromedp.Poll[chromedp.Void](`document.getElementById('toast').textContent.includes('printer')`))
	run(t, ctx, "refund dialog",
		chromedp.WaitVisible(chromedp.CSS(row+" button:nth-of-type(2)")),
		chromedp.Click(chromedp.CSS(row+" button:nth-of-type(2)")),
		chromedp.WaitVisible(chromedp.CSS("#refund-dialog")))
	if v := get(t, ctx, "prefilled", chromedp.Value(chromedp.CSS("#refund-amount"))); v != "₩12,000" {
		t.Fatalf("the refund dialog offers %q, want the whole ₩12,000", v)
	}
	run(t, ctx, "refund ₩2,500",
		chromedp.SetValue(chromedp.CSS("#refund-amount"), "₩2,500"),
		chromedp.Click(chromedp.CSS("#refund-form button[type=submit]")),
		chromedp.WaitNotVisible(chromedp.CSS("#refund-dialog")))
	_, m := tp.do("GET", "/v1/sales/"+id, "")
	if m["refunded_minor"] != float64(2500) {
		t.Fatalf("after the page's refund the sale says %v", m)
	}
	refunds := m["refunds"].([]any)
	// posgw answers the refund; then the day closes from the page.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, r := tp.do("GET", "/v1/refunds/"+refunds[0].(string), "")
		if r["status"] != "pending" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	run(t, ctx, "close the batch",
		chromedp.Click(chromedp.CSS("#close")),
		chromedp.WaitVisible(chromedp.CSS("#close-confirm")),
		chromedp.Click(chromedp.CSS("#close-yes")),
		chromedp.Poll[chromedp.Void](`document.getElementById('zreport').textContent.includes('Z REPORT')`))
	rep := get(t, ctx, "Z report", chromedp.Text(chromedp.CSS("#zreport")))
	if !strings.Contains(rep, "NET KRW 9500") {
		t.Fatalf("Z report on the page:\n%s", rep)
	}
	shot(t, ctx, dir, "09-z-report")
}

// TestPageQRAndOfflineBadge runs posd outside the demo with a merchant QR and a
// broker but no posgw: the merchant-presented sale's QR is read back from a
// screenshot and equals the sale's dynamic code; a customer-presented sale nobody
// answers shows in doubt, then reversing. Then the broker stops: the page's badge
// turns offline with the queue depth, live, and a sale is refused.
func TestPageQRAndOfflineBadge(t *testing.T) {
	ctx := browser(t)
	dir := artifacts(t)
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			b.Close()
		}
	}()
	tp := startThinPathWith(t, t.TempDir(), b.URL(), func(c *config.Config) {
		c.Merchant.EMVQR = sampleMerchantQR
		c.Payment.OfflineAfter = 0 // the offline policy applies as soon as the link is down
		c.Payment.AuthTimeout = config.Duration(time.Second)
		c.Payment.QueryTimeout = config.Duration(time.Second)
	})
	defer tp.shutdown()
	signInWithPIN(t, ctx, tp, "lee", "manager")
	run(t, ctx, "online badge", chromedp.WaitVisible(chromedp.CSS(`#link[data-online="true"]`)))
	typeAmount(t, ctx, "4500")
	run(t, ctx, "show QR", chromedp.Click(chromedp.CSS("#charge-qr")))
	waitState(t, ctx, "authorizing")
	run(t, ctx, "QR drawn", chromedp.WaitVisible(chromedp.CSS("#qr")),
		chromedp.Poll[chromedp.Void](`document.getElementById('qr').complete && document.getElementById('qr').naturalWidth > 0`))
	png := shot(t, ctx, dir, "05-merchant-qr")
	qrShot := get(t, ctx, "QR screenshot", chromedp.Screenshot(chromedp.CSS("#qr")))
	if err := os.WriteFile(filepath.Join(dir, "05-qr-element.png"), qrShot, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = png
	img, _, err := image.Decode(bytes.NewReader(qrShot))
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("the QR on screen does not decode: %v", err)
	}
	id := pageSaleID(t, ctx)
	_, sale := tp.do("GET", "/v1/sales/"+id, "")
	if sale["qr"] == nil || res.GetText() != sale["qr"] {
		t.Fatalf("screen QR %q, sale's code %v", res.GetText(), sale["qr"])
	}
	run(t, ctx, "cancel", chromedp.Click(chromedp.CSS("#cancel")))

	// No cloud answers (no posgw): the page shows the sale in doubt, then not paid
	// and being reversed, each with what to do.
	run(t, ctx, "new sale", chromedp.WaitVisible(chromedp.CSS("#newsale")), chromedp.Click(chromedp.CSS("#newsale")))
	typeAmount(t, ctx, "7000")
	run(t, ctx, "charge", chromedp.Click(chromedp.CSS("#charge-scan")))
	waitState(t, ctx, "waiting_for_code")
	fmt.Fprintln(tp.scan, sampleCode())
	if head := waitState(t, ctx, "in_doubt"); head != "In doubt" {
		t.Fatalf("in-doubt heading %q", head)
	}
	if next := get(t, ctx, "next", chromedp.Text(chromedp.CSS("#next"))); !strings.Contains(next, "Do not charge again") {
		t.Fatalf("in-doubt next step %q", next)
	}
	shot(t, ctx, dir, "05b-in-doubt")
	if head := waitState(t, ctx, "reversal_pending"); !strings.Contains(head, "Not paid") {
		t.Fatalf("reversal heading %q", head)
	}
	shot(t, ctx, dir, "05c-reversing")

	// The broker stops: the badge says offline, live; a sale is refused and its
	// record waits in the queue.
	b.Close()
	stopped = true
	run(t, ctx, "offline badge", chromedp.WaitVisible(chromedp.CSS(`#link[data-online="false"]`)))
	run(t, ctx, "new sale", chromedp.WaitVisible(chromedp.CSS("#newsale")), chromedp.Click(chromedp.CSS("#newsale")))
	typeAmount(t, ctx, "3000")
	run(t, ctx, "charge", chromedp.Click(chromedp.CSS("#charge-scan")))
	waitState(t, ctx, "waiting_for_code")
	fmt.Fprintln(tp.scan, sampleCode())
	if head := waitState(t, ctx, "refused"); !strings.Contains(head, "another method") {
		t.Fatalf("refused heading %q", head)
	}
	run(t, ctx, "queue on the badge",
		chromedp.WaitVisible(chromedp.CSS(`#link[data-online="false"]`)),
		chromedp.Poll[chromedp.Void](`/waiting to sync/.test(document.getElementById('link').textContent)`))
	badge := get(t, ctx, "badge", chromedp.Text(chromedp.CSS("#link")))
	if !strings.Contains(badge, "Offline") || !strings.Contains(badge, "oldest") {
		t.Fatalf("badge %q", badge)
	}
	shot(t, ctx, dir, "06-offline-refused")
}

// TestPageLanguagesAndAmounts switches the page to Korean, Japanese and Chinese and
// sells in each locale's currency: ₩12,000 → 12000, ¥1,200 → 1200, HK$12.00 → 1200.
func TestPageLanguagesAndAmounts(t *testing.T) {
	ctx := browser(t)
	dir := artifacts(t)
	tp := startPosd(t, t.TempDir(), "tcp://127.0.0.1:1", true, func(c *config.Config) { c.Page.Currencies = []string{"KRW", "JPY", "HKD"} })
	defer tp.shutdown()
	signInWithPIN(t, ctx, tp, "park", "clerk")
	for _, c := range []struct {
		lang, cur, digits string
		shown             []string
		minor             float64
		heading           string
	}{
		{"ko", "KRW", "12000", []string{"₩12,000"}, 12000, "고객 결제코드를 스캔하세요"},
		{"ja", "JPY", "1200", []string{"¥1,200", "￥1,200"}, 1200, "お客様のコードを読み取ってください"},
		{"zh", "HKD", "1200", []string{"HK$12.00"}, 1200, "请扫描顾客付款码"},
	} {
		run(t, ctx, c.lang,
			chromedp.SetValue(chromedp.CSS("#lang"), c.lang),
			eval[chromedp.Void](`document.getElementById('lang').dispatchEvent(new Event('change'))`),
			chromedp.SetValue(chromedp.CSS("#currency"), c.cur),
			eval[chromedp.Void](`document.getElementById('currency').dispatchEvent(new Event('change'))`),
		)
		shown := typeAmount(t, ctx, c.digits)
		if !contains(c.shown, shown) {
			t.Fatalf("%s: keypad shows %q, want one of %q", c.lang, shown, c.shown)
		}
		parsed := get(t, ctx, "parse", eval[float64](fmt.Sprintf(`walletless.parseAmount(%q, %q)`, shown, c.cur)))
		if parsed != c.minor {
			t.Fatalf("%s: %q reads back as %v minor units, want %v", c.lang, shown, parsed, c.minor)
		}
		run(t, ctx, "charge", chromedp.Click(chromedp.CSS("#charge-scan")))
		if head := waitState(t, ctx, "waiting_for_code"); head != c.heading {
			t.Fatalf("%s heading %q, want %q", c.lang, head, c.heading)
		}
		shot(t, ctx, dir, "07-"+c.lang)
		_, m := tp.do("GET", "/v1/sales/"+pageSaleID(t, ctx), "")
		if m["amount_minor"] != c.minor || m["currency"] != c.cur {
			t.Fatalf("%s: sale %v %v, want %v %s", c.lang, m["amount_minor"], m["currency"], c.minor, c.cur)
		}
		run(t, ctx, "cancel", chromedp.Click(chromedp.CSS("#cancel")))
		waitState(t, ctx, "cancelled")
		run(t, ctx, "new sale", chromedp.Click(chromedp.CSS("#newsale")))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestPageSessionExpiresAndCrossSiteRefused: a session idle past page.session_ttl
// sends the clerk back to sign-in with the reason; a page of another origin that
// posts a sale with the signed-in browser's cookie is refused and no sale is made.
func TestPageSessionExpiresAndCrossSiteRefused(t *testing.T) {
	ctx := browser(t)
	dir := artifacts(t)
	tp := startPosd(t, t.TempDir(), "tcp://127.0.0.1:1", true, func(c *config.Config) { c.Page.SessionTTL = config.Duration(3 * time.Second) })
	defer tp.shutdown()
	signInWithPIN(t, ctx, tp, "choi", "manager")

	// Cross-site: another origin on the same host (same site for the cookie: only
	// the Origin check stands between it and the API) submits a form.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		if r.URL.Path != "/" {
			fmt.Fprint(w, "<p>another shop's page</p>")
			return
		}
		fmt.Fprintf(w, `<form id=f method=POST action="%s/v1/sales" enctype="text/plain"><input name='{"amount_minor":1,"currency":"KRW","x":"' value='"}'></form><script>document.getElementById('f').submit()</script>`, tp.api)
	}))
	defer evil.Close()
	run(t, ctx, "cross-site form",
		chromedp.Navigate(evil.URL),
		chromedp.Poll[chromedp.Void](`location.href.indexOf('/v1/sales') >= 0 && document.body && document.body.innerText.length > 0`))
	body := get(t, ctx, "answer", eval[string](`document.body.innerText`))
	if !strings.Contains(body, "cross-origin requests are refused") {
		t.Fatalf("cross-site POST answered %q", body)
	}
	// A cross-origin fetch with credentials.
	run(t, ctx, "other origin", chromedp.Navigate(evil.URL+"/fetch"))
	fetched := get(t, ctx, "cross-site fetch", chromedp.Evaluate[string](fmt.Sprintf(`fetch(%q, {method: 'POST', credentials: 'include', headers: {'Content-Type': 'application/json'}, body: '{"amount_minor":1,"currency":"KRW"}'}).then(r => 'status ' + r.status, e => 'blocked ' + e)`, tp.api+"/v1/sales"), chromedp.EvalAwaitPromise))
	if !strings.HasPrefix(fetched, "blocked") {
		t.Fatalf("cross-site fetch: %s", fetched)
	}
	if _, m := tp.do("GET", "/v1/sales", ""); len(m["sales"].([]any)) != 0 {
		t.Fatalf("a cross-site request made a sale: %v", m["sales"])
	}

	// Back on the page, idle past the TTL: the next action asks to sign in again.
	// A fresh sign-in (the first session may have expired meanwhile on a slow machine).
	run(t, ctx, "sign in again",
		chromedp.Navigate(tp.api+"/"),
		chromedp.Poll[chromedp.Void](`!document.getElementById('signin').hidden || !document.getElementById('counter').hidden`),
		eval[chromedp.Void](`if (!document.getElementById('counter').hidden) document.getElementById('signout').click()`),
		chromedp.WaitVisible(chromedp.CSS("#pinform")),
		chromedp.SendKeys(chromedp.CSS("#name"), "choi"),
		chromedp.SendKeys(chromedp.CSS("#pin"), "482913"),
		chromedp.Click(chromedp.CSS("#pinform button[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS("#counter")))
	time.Sleep(4 * time.Second) // longer than page.session_ttl
	// The clerk acts (or the page's event stream notices first): either way the page
	// asks to sign in again and says why.
	run(t, ctx, "act after expiry",
		eval[chromedp.Void](`if (!document.getElementById('counter').hidden) { document.querySelector('#keypad button[data-key="5"]').click(); document.getElementById('charge-scan').click(); }`),
		chromedp.WaitVisible(chromedp.CSS("#signin")))
	msg := get(t, ctx, "message", chromedp.Text(chromedp.CSS("#signin-msg")))
	if !strings.Contains(msg, "expired") {
		t.Fatalf("sign-in message %q", msg)
	}
	shot(t, ctx, dir, "08-session-expired")
}
