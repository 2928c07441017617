package daemon

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/broker"
	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/gateway"
	"github.com/walletless/walletless/internal/shred"
	"github.com/walletless/walletless/internal/wirecheck"
)

// TestNoPaymentCodeLeftAtRest runs 1,000 sales through posd and posgw with two broker
// outages (sales stored offline under a defer policy meanwhile), waits until every
// one is synced, and then reads posd.db and every other file of the data directory
// raw: no full payment code may be found, and no sealed value in posd.db may open,
// under any key file still present, to a synced sale's code (bbolt keeps freed
// pages, so the deleted outbox entries are still in the file: only their destroyed
// keys make them noise).
func TestNoPaymentCodeLeftAtRest(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 sales with broker outages")
	}
	defer func(i, m, e, g time.Duration) { shredRotateIdle, shredRotateMax, shredEvery, shredMinGap = i, m, e, g }(shredRotateIdle, shredRotateMax, shredEvery, shredMinGap)
	shredRotateIdle, shredRotateMax, shredEvery, shredMinGap = 300*time.Millisecond, 3*time.Second, 200*time.Millisecond, 50*time.Millisecond

	dir := t.TempDir()
	b, err := broker.Start("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	wirecheck.Watch(t, b.URL(), wirecheck.Options{})
	addr := b.Addr()
	defer func() { b.Close() }()
	ledger, stopGateway := runGateway(t, b.URL(), dir)
	defer stopGateway()

	tp := startThinPathWith(t, dir, b.URL(), func(c *config.Config) {
		c.Printer.Target = "none"
		c.Payment.OfflineAfter = 0 // the broker gone means offline at once
		c.Payment.Offline.Default = config.OfflinePolicy{Action: "defer",
			MaxAmountMinor: map[string]int64{"KRW": 1_000_000}, MaxTotalMinor: map[string]int64{"KRW": 1 << 40}, MaxCount: 10_000}
	})
	stopped := false
	defer func() {
		if !stopped {
			tp.shutdown()
		}
	}()

	const n = 1000
	codes := make([]string, n)
	statuses := map[string]int{}
	for i := range n {
		switch i {
		case 300, 700: // outage: the broker goes away for 100 sales
			b.Close()
			waitStatusField(t, tp, "online", false)
		case 400, 800:
			if b, err = broker.Start(addr, nil); err != nil {
				t.Fatalf("restart broker: %v", err)
			}
		}
		codes[i] = fmt.Sprintf("28%016d", 7_300_000_000+int64(i)*7919)
		code, m := tp.do("POST", "/v1/sales", fmt.Sprintf(`{"amount_minor": %d, "currency": "KRW"}`, 1000+i))
		if code != http.StatusCreated {
			t.Fatalf("sale %d: %d %v", i, code, m)
		}
		id := m["id"].(string)
		if code, m := tp.do("POST", "/v1/sales/"+id+"/code", fmt.Sprintf(`{"code": %q}`, codes[i])); code >= 300 {
			t.Fatalf("sale %d code: %d %v", i, code, m)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
			_, m = tp.do("GET", "/v1/sales/"+id, "")
			if s := m["status"].(string); s != "waiting_for_code" && s != "authorizing" {
				statuses[s]++
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sale %d stuck: %v", i, m)
			}
		}
	}
	t.Logf("clerk-facing outcomes: %v", statuses)

	// Everything synced: the outbox is empty and posgw holds each sale once.
	waitStatusField(t, tp, "online", true)
	deadline := time.Now().Add(40 * time.Second)
	for {
		_, st := tp.do("GET", "/v1/status", "")
		var entries int
		ledger.ForEach(func(gateway.Entry) error { entries++; return nil })
		if st["outbox_depth"] == float64(0) && entries == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not synced: outbox %v, ledger %d of %d", st["outbox_depth"], entries, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The keys of the synced sales die: the sweeper rotates once the outbox is empty and
	// destroys every epoch no entry uses, so one key is left, and it opens no sealed
	// value in posd.db (an unused current epoch; it may predate the last sale's poll).
	keysDir := filepath.Join(dir, "posd", KeysDir)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if ks, _ := os.ReadDir(keysDir); len(ks) == 1 {
			e, err := strconv.ParseUint(strings.TrimSuffix(ks[0].Name(), ".key"), 10, 64)
			key, _ := os.ReadFile(filepath.Join(keysDir, ks[0].Name()))
			db, _ := os.ReadFile(filepath.Join(dir, "posd", DBFile))
			if err == nil && len(key) == 32 && openAll(t, db, e, key, codes) == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			ks, _ := os.ReadDir(keysDir)
			t.Errorf("%d epoch keys left after the outbox drained, or the one left opens a code", len(ks))
			break // the raw reads below show what that leaves readable
		}
	}
	tp.shutdown()
	stopped = true

	// 1. No full code in any file of the data directory.
	db, err := os.ReadFile(filepath.Join(dir, "posd", DBFile))
	if err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(filepath.Join(dir, "posd"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, c := range codes {
			if bytes.Contains(raw, []byte(c)) {
				found++
			}
		}
		if found > 0 {
			t.Errorf("%s holds %d full payment codes", path, found)
		}
		return nil
	})
	// 2. Sealed values are in the file (deleted outbox entries live on in free pages),
	// but none opens under a key file still present.
	sealed := bytes.Count(db, []byte(shred.Magic))
	if sealed == 0 {
		t.Error("posd.db holds no sealed value at all: were the payment requests sealed?")
	}
	opened := 0
	ks, _ := os.ReadDir(keysDir)
	for _, k := range ks {
		epoch, err := strconv.ParseUint(strings.TrimSuffix(k.Name(), ".key"), 10, 64)
		if err != nil {
			t.Fatalf("key file %s", k.Name())
		}
		raw, err := os.ReadFile(filepath.Join(keysDir, k.Name()))
		if err != nil {
			t.Fatal(err)
		}
		opened += openAll(t, db, epoch, raw, codes)
	}
	t.Logf("posd.db: %d bytes, %d sealed values left in it, %d key files, %d values open to a code", len(db), sealed, len(ks), opened)
	if opened > 0 {
		t.Errorf("%d sealed values in posd.db still open to a synced sale's code", opened)
	}
}

// openAll tries every sealed value of epoch in db (each start of shred.Magic, every
// possible length) with key and counts those that open to text holding one of codes.
func openAll(t *testing.T, db []byte, epoch uint64, key []byte, codes []string) int {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, _ := cipher.NewGCM(block)
	const hdr = len(shred.Magic) + 8
	n := 0
	for i := 0; ; {
		j := bytes.Index(db[i:], []byte(shred.Magic))
		if j < 0 {
			return n
		}
		at := i + j
		i = at + 1
		if at+hdr+12 > len(db) || binary.BigEndian.Uint64(db[at+len(shred.Magic):at+hdr]) != epoch {
			continue
		}
		for end := at + shred.Overhead; end <= min(len(db), at+4096); end++ {
			plain, err := aead.Open(nil, db[at+hdr:at+hdr+12], db[at+hdr+12:end], db[at:at+hdr])
			if err != nil {
				continue
			}
			for _, c := range codes {
				if bytes.Contains(plain, []byte(c)) {
					n++
					break
				}
			}
			break
		}
	}
}

// waitStatusField waits until /v1/status reports field = want.
func waitStatusField(t *testing.T, tp *thinPath, field string, want any) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, st := tp.do("GET", "/v1/status", ""); st[field] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %s never became %v", field, want)
		}
	}
}
