package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"image"
	_ "image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"aead.dev/minisign"
	"github.com/creack/pty"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/walletless/walletless/pairing"
	wsync "github.com/walletless/walletless/sync"
)

// pairingBox is a posd process started from a packaged-style configuration (no
// device id), its scanner a pseudo terminal.
type pairingBox struct {
	t        *testing.T
	proc     *proc
	api      string
	data     string
	receipts string
	scanner  *os.File // the pty's master: what the scanner "reads"
}

func startPairingBox(t *testing.T, dir, name, posd, fleetPub string) *pairingBox {
	t.Helper()
	master, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("pseudo terminal: %v", err)
	}
	t.Cleanup(func() { master.Close(); tty.Close() })
	b := &pairingBox{t: t, data: filepath.Join(dir, name+"-data"), receipts: filepath.Join(dir, name+"-receipts"), scanner: master}
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	b.api = "http://" + apiAddr
	// deploy/posd.json with this machine's paths: the packaged shape (device_id "").
	raw, err := os.ReadFile("../../deploy/posd.json")
	if err != nil {
		t.Fatal(err)
	}
	var conf map[string]any
	if err := json.Unmarshal(raw, &conf); err != nil {
		t.Fatal(err)
	}
	if conf["device_id"] != "" {
		t.Fatalf("the packaged posd.json has device_id %v: a new box must start unpaired", conf["device_id"])
	}
	conf["data_dir"] = b.data
	conf["api"] = map[string]any{"addr": apiAddr}
	conf["scanner"].(map[string]any)["source"] = tty.Name()
	conf["scanner"].(map[string]any)["dedup"] = "0s"
	conf["printer"] = map[string]any{"target": "emulator:" + b.receipts}
	conf["fleet"] = map[string]any{"trusted_keys": []string{fleetPub}} // as make deb FLEET_PUB= bakes it
	cfgFile := filepath.Join(dir, name+".json")
	out, _ := json.Marshal(conf)
	if err := os.WriteFile(cfgFile, out, 0o600); err != nil {
		t.Fatal(err)
	}
	b.proc = start(t, nil, posd, "-config", cfgFile, "-api", apiAddr, "-data", b.data)
	waitHTTP(t, b.api+"/v1/status")
	return b
}

func (b *pairingBox) status() map[string]any {
	_, st := getJSON(b.t, "GET", b.api+"/v1/status", "")
	return st
}

func (b *pairingBox) lastError() string {
	p, _ := b.status()["pairing"].(map[string]any)
	s, _ := p["last_error"].(string)
	return s
}

func (b *pairingBox) scan(text string) {
	b.t.Helper()
	if _, err := b.scanner.Write([]byte(text + "\r")); err != nil {
		b.t.Fatal(err)
	}
}

// slips returns the ESC/POS bytes of the emulator's jobs named prefix*.
func (b *pairingBox) slips(prefix string) string {
	bins, _ := filepath.Glob(filepath.Join(b.receipts, prefix+"*.bin"))
	var all strings.Builder
	for _, f := range bins {
		data, _ := os.ReadFile(f)
		all.Write(data)
	}
	return all.String()
}

func (b *pairingBox) unchanged() {
	b.t.Helper()
	if st := b.status(); st["state"] != "unpaired" {
		b.t.Fatalf("state %v after a refused QR", st["state"])
	}
	for _, f := range []string{pairing.StateFile, pairing.KeyFile, pairing.CertFile, pairing.CAFile} {
		if _, err := os.Stat(filepath.Join(b.data, f)); err == nil {
			b.t.Fatalf("%s written by a refused pairing", f)
		}
	}
}

// decodeQR reads a pairing QR's text back from posfleet's PNG, as a scanner would.
func decodeQR(t *testing.T, file string) string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	// posfleet's PNG is a clean, upright symbol: decode it as such (gozxing's finder
	// pattern detector misjudges some large symbols' dimension).
	res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatalf("decode %s: %v", file, err)
	}
	return res.GetText()
}

// TestZeroTouchPairing: a box from the package (no device id) says it is unpaired on
// the API and the printer; `posfleet provision` makes the pairing QR; scanned through
// the counter scanner (a pty), posd verifies it, enrolls with `posfleet
// enroll-server` (its certificate signed by the fleet CA, which the QR pins), connects
// to mosquitto over mutual TLS as its certificate's CN and sells, approved by posgw.
// Forged, reused (on a second box) and expired QRs are refused with nothing changed,
// and the deploy ACL confines the paired box to its own topics.
func TestZeroTouchPairing(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	dir := t.TempDir()
	m := newMosquitto(t, mosqOpts{tls: true})
	bins := build(t, dir, "posd", "posgw", "posfleet")
	posfleet := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command(bins["posfleet"], args...).CombinedOutput()
		if err != nil {
			t.Fatalf("posfleet %v: %v\n%s", args, err, out)
		}
		return out
	}
	// The fleet: a signing key, and the broker's CA as the fleet CA (the signer gets
	// its key and a server certificate for 127.0.0.1).
	keyDir := filepath.Join(dir, "fleet-key")
	posfleet("keygen", "-o", keyDir)
	pub, err := minisign.PublicKeyFromFile(filepath.Join(keyDir, "posfleet.pub"))
	if err != nil {
		t.Fatal(err)
	}
	caKey := filepath.Join(dir, "ca.key")
	if err := pairing.WriteKey(caKey, m.pki.Key); err != nil {
		t.Fatal(err)
	}
	enrollCert, enrollKey := m.pki.issue(t, "enroll", true)
	secrets := filepath.Join(dir, "secrets.json")
	enrollAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	enrollSrv := start(t, nil, bins["posfleet"], "enroll-server", "-listen", enrollAddr, "-ca", m.pki.ca, "-ca-key", caKey,
		"-cert", enrollCert, "-key", enrollKey, "-secrets", secrets)
	waitTCP(t, enrollAddr)
	gwData := filepath.Join(dir, "gw")
	t.Setenv("POSGW_MQTT_PASSWORD", password) // posgw reads its broker password from the environment
	gw := start(t, nil, bins["posgw"], "-broker", m.URL(), "-username", "posgw", "-data", gwData)

	box := startPairingBox(t, dir, "box1", bins["posd"], pub.String())
	if st := box.status(); st["state"] != "unpaired" {
		t.Fatalf("a new box's status: %v", st)
	}
	if code, m := getJSON(t, "POST", box.api+"/v1/sales", `{"amount_minor": 100, "currency": "KRW"}`); code != 503 || !strings.Contains(fmt.Sprint(m["error"]), "not paired") {
		t.Fatalf("sale on an unpaired box: %d %v", code, m)
	}
	waitFor(t, "the unpaired slip", 30*time.Second, func() bool { return strings.Contains(box.slips("unpaired-"), "Not paired yet") })

	// The manager provisions the box's QR; the technician scans it.
	png := filepath.Join(dir, "box1-qr.png")
	out := posfleet("provision", "-device-id", "shop-42", "-broker", m.TLSURL(), "-enroll-url", "https://"+enrollAddr,
		"-group", "north", "-key", filepath.Join(keyDir, "posfleet.key"), "-ca", m.pki.ca, "-secrets", secrets, "-o", png, "-json")
	var prov map[string]any
	if err := json.Unmarshal(out, &prov); err != nil {
		t.Fatalf("provision output %s: %v", out, err)
	}
	t.Logf("pairing QR: %v characters, %v modules", prov["text_chars"], prov["qr_modules"])
	text := decodeQR(t, png)
	if !strings.HasPrefix(text, pairing.Prefix) {
		t.Fatalf("the PNG decodes to %.12q…", text)
	}
	box.scan(text)
	waitFor(t, "the box paired and online", 60*time.Second, func() bool {
		st := box.status()
		return st["state"] == "selling" && st["device_id"] == "shop-42" && st["online"] == true
	})
	waitFor(t, "the pairing slip", 30*time.Second, func() bool { return strings.Contains(box.slips("paired-"), "Device: shop-42") })
	// The enrollment went through EST's answer, certs-only PKCS#7 (not the PEM chain).
	if log := enrollSrv.cmd.Stdout.(*lockedWriter).String(); !strings.Contains(log, `device=shop-42 content_type="`+pairing.CertsOnlyContentType+`"`) {
		t.Fatalf("the enrollment server did not answer certs-only PKCS#7:\n%s", log)
	}
	if s := box.slips("paired-"); !strings.Contains(s, "Certificate SHA-256") || strings.Contains(s, text) {
		t.Fatalf("pairing slip: %q", s)
	}

	// It sells: a sale through the API, the customer's code through the scanner.
	code, sale := getJSON(t, "POST", box.api+"/v1/sales", `{"amount_minor": 4200, "currency": "KRW"}`)
	if code != 201 {
		t.Fatalf("create: %d %v", code, sale)
	}
	id := sale["id"].(string)
	box.scan("281234567890123456")
	waitFor(t, "the sale approved", 60*time.Second, func() bool {
		_, s := getJSON(t, "GET", box.api+"/v1/sales/"+id, "")
		if s["status"] == "declined" || s["status"] == "refused" {
			t.Fatalf("sale %v", s)
		}
		return s["status"] == "approved"
	})
	// A paired box ignores a pairing QR (the same one, scanned again).
	box.scan(text)

	// The deploy ACL confines the paired box's certificate to its own topics.
	roots := x509.NewCertPool()
	caPEM, _ := os.ReadFile(m.pki.ca)
	roots.AppendCertsFromPEM(caPEM)
	pair, err := tls.LoadX509KeyPair(filepath.Join(box.data, pairing.CertFile), filepath.Join(box.data, pairing.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	spy, err := connect(t, m.TLSURL(), "", "shop-42-spy", &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatalf("the enrolled certificate does not connect: %v", err)
	}
	watcher := mustConnect(t, m.URL(), "posgw", "posgw-pairing-watch")
	watcher.sub(t, "walletless/v1/devices/+/payments/request")
	spy.pub(t, wsync.RequestTopic("shop-99"), false, "spoofed by shop-42")
	spy.pub(t, wsync.RequestTopic("shop-42"), false, "pairing marker")
	if got := watcher.waitPayload(t, "pairing marker"); len(got) > 0 {
		t.Errorf("a paired box wrote another device's topic: %v", topicsOf(got))
	}

	// A second box: the used QR, a forged one and an expired one are refused.
	box2 := startPairingBox(t, dir, "box2", bins["posd"], pub.String())
	box2.scan(text)
	waitFor(t, "the reused QR refused", 30*time.Second, func() bool { return strings.Contains(box2.lastError(), "already used") })
	box2.unchanged()
	otherKey := filepath.Join(dir, "other-key")
	posfleet("keygen", "-o", otherKey)
	forgedPNG := filepath.Join(dir, "forged.png")
	posfleet("provision", "-device-id", "shop-43", "-broker", m.TLSURL(), "-enroll-url", "https://"+enrollAddr,
		"-key", filepath.Join(otherKey, "posfleet.key"), "-ca", m.pki.ca, "-secrets", secrets, "-o", forgedPNG)
	box2.scan(decodeQR(t, forgedPNG))
	waitFor(t, "the forged QR refused", 30*time.Second, func() bool { return strings.Contains(box2.lastError(), "does not trust") })
	box2.unchanged()
	// Expired: made an hour ago for an hour (posfleet refuses to make one already
	// expired, so the test signs it with the fleet key the way provision does).
	skText, err := os.ReadFile(filepath.Join(keyDir, "posfleet.key"))
	if err != nil {
		t.Fatal(err)
	}
	var sk minisign.PrivateKey
	if err := sk.UnmarshalText(skText); err != nil {
		t.Fatal(err)
	}
	caCert, err := pairing.ReadCert(m.pki.ca)
	if err != nil {
		t.Fatal(err)
	}
	p, err := pairing.NewPayload(pairing.Payload{DeviceID: "shop-44", Broker: m.TLSURL(), CAFingerprint: pairing.Fingerprint(caCert.Raw),
		EnrollURL: "https://" + enrollAddr}, time.Now().Add(-2*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := pairing.AddRecord(secrets, pairing.RecordFor(p)); err != nil {
		t.Fatal(err)
	}
	expired, err := pairing.Sign(sk, p)
	if err != nil {
		t.Fatal(err)
	}
	box2.scan(expired)
	waitFor(t, "the expired QR refused", 30*time.Second, func() bool { return strings.Contains(box2.lastError(), "expired") })
	box2.unchanged()
	waitFor(t, "the refusal slips", 30*time.Second, func() bool {
		s := box2.slips("pairing-refused-")
		return strings.Count(s, "Pairing refused") >= 3
	})

	box2.scanner.Close()
	box2.proc.stop(t)
	box.scanner.Close()
	box.proc.stop(t)
	gw.stop(t)
	logs := box.proc.cmd.Stdout.(*lockedWriter).String() + box2.proc.cmd.Stdout.(*lockedWriter).String()
	if !strings.Contains(logs, "already paired") {
		t.Error("the paired box did not say it ignored the pairing QR")
	}
	for _, secret := range []string{text, expired} {
		q, _ := pairing.Parse(secret)
		if strings.Contains(logs, q.Payload.Secret) || strings.Contains(logs, secret) {
			t.Error("a posd log holds a pairing QR's secret")
		}
	}
	out, err = exec.Command(bins["posgw"], "ledger", "-data", gwData, "-json").CombinedOutput()
	if err != nil {
		t.Fatalf("posgw ledger: %v\n%s", err, out)
	}
	found := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("ledger line %q: %v", sc.Text(), err)
		}
		if e["key"] == id && e["device"] == "shop-42" && e["status"] == "approved" && e["amount_minor"] == float64(4200) {
			found = true
		}
	}
	if !found {
		t.Errorf("the paired box's sale is not in the ledger:\n%s", out)
	}
}
