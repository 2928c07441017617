package daemon

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/internal/secretfile"
	"github.com/walletless/walletless/internal/shred"
	"github.com/walletless/walletless/payment"
	"github.com/walletless/walletless/store"
)

const testCode = "281234567890123456"

func enqueue(t *testing.T, st *store.Store, enc func(payment.Message) ([]byte, error), m payment.Message) uint64 {
	t.Helper()
	var seq uint64
	if err := st.Update(func(tx *store.Tx) error {
		b, err := enc(m)
		if err != nil {
			return err
		}
		seq, err = tx.Enqueue(b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return seq
}

// TestSealedOutbox: a payment request is stored sealed (no code in the stored
// bytes), the link reads exactly the bytes the daemon encoded (the wire format does
// not change), other messages stay plain, and a sweep after the entry is gone
// destroys its epoch key.
func TestSealedOutbox(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, DBFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sh, err := newShredder(st, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	plainEnc := encodeOutbox("shop-7")
	enc := sh.encode(plainEnc)
	req := payment.AuthRequest{Key: "0190b7a4-0000-7000-8000-000000000001", AmountMinor: 1200, Currency: "KRW", Kind: "wallet", Scheme: "alipay",
		Code: testCode, MaskedCode: "2812…3456", CreatedAt: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
	att := payment.AttemptRecord{Key: "0190b7a4-0000-7000-8000-000000000002", Status: payment.StatusDeclined, Currency: "KRW", MaskedCode: "…1234"}
	s1 := enqueue(t, st, enc, req)
	s2 := enqueue(t, st, enc, att)

	stored, _ := st.Peek(10, nil)
	if len(stored) != 2 || bytes.Contains(stored[0].Data, []byte(testCode)) || bytes.Contains(stored[0].Data, []byte("alipay")) {
		t.Fatalf("stored payment request is not sealed: %q", stored[0].Data)
	}
	wantReq, _ := plainEnc(req)
	wantAtt, _ := plainEnc(att)
	if !bytes.Equal(stored[1].Data, wantAtt) {
		t.Errorf("attempt record changed at rest: %q", stored[1].Data)
	}
	got, err := sh.outbox(outbox{st}).Pending(10, nil)
	if err != nil || len(got) != 2 || got[0].Seq != s1 || !bytes.Equal(got[0].Data, wantReq) || !bytes.Equal(got[1].Data, wantAtt) {
		t.Fatalf("pending: %v %+v", err, got)
	}

	// Decided: the entry leaves the outbox; the next sweep rotates and shreds.
	defer func(i time.Duration) { shredRotateIdle = i }(shredRotateIdle)
	shredRotateIdle = 0
	old, _ := sh.ring.Current()
	if err := st.Ack(s1, s2); err != nil {
		t.Fatal(err)
	}
	if err := sh.sweep(); err != nil {
		t.Fatal(err)
	}
	if sh.ring.Has(old) || len(sh.ring.Epochs()) != 1 {
		t.Fatalf("epochs after the sweep: %v (old %d)", sh.ring.Epochs(), old)
	}
	if _, err := os.Stat(filepath.Join(dir, KeysDir, strconv.FormatUint(old, 10)+".key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old key file: %v", err)
	}
}

// TestSealedEntryWithoutKey: when the key directory is lost, posd still starts, says
// at startup how many entries cannot be read, never publishes them (no garbage, no
// panic), keeps sending the others, and logs each unreadable entry once.
func TestSealedEntryWithoutKey(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, DBFile), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sh, err := newShredder(st, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	enc := sh.encode(encodeOutbox("shop-7"))
	enqueue(t, st, enc, payment.AuthRequest{Key: "k1", AmountMinor: 1, Currency: "KRW", Code: testCode})
	plainSeq := enqueue(t, st, enc, payment.QueryRequest{Key: "k1"})

	if err := os.RemoveAll(filepath.Join(dir, KeysDir)); err != nil {
		t.Fatal(err)
	}
	logs := new(bytes.Buffer)
	sh2, err := newShredder(st, dir, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("restart without keys: %v", err)
	}
	if !strings.Contains(logs.String(), "cannot be read") || !strings.Contains(logs.String(), "entries=1") {
		t.Errorf("startup log: %s", logs)
	}
	ob := sh2.outbox(outbox{st})
	for range 3 {
		got, err := ob.Pending(10, nil)
		if err != nil || len(got) != 1 || got[0].Seq != plainSeq {
			t.Fatalf("pending without the key: %v %+v", err, got)
		}
	}
	if n := strings.Count(logs.String(), "outbox entry cannot be opened"); n != 1 {
		t.Errorf("%d error lines for the unreadable entry, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "epoch") || strings.Contains(logs.String(), testCode) {
		t.Errorf("log: %s", logs)
	}
}

// TestCodeKey: <data>/codes.key is made once (32 bytes, 0600), read again on the next
// start, and refused when its group or others can read it.
func TestCodeKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := codeKey(dir)
	if err != nil || len(k1) != 32 {
		t.Fatalf("first start: %d bytes, %v", len(k1), err)
	}
	path := filepath.Join(dir, CodesKeyFile)
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o", fi.Mode().Perm())
	}
	if k2, err := codeKey(dir); err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second start: %v", err)
	}
	os.Chmod(path, 0o644)
	if _, err := codeKey(dir); !errors.Is(err, secretfile.ErrTooOpen) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("0644 codes.key: %v", err)
	}
}

// TestSealRacingRotation: a payment request sealed under the new epoch while the
// sweep that made it is still running keeps that epoch marked as used, so once the
// outbox is empty the next due sweep rotates it away and destroys its key.
func TestSealRacingRotation(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, DBFile), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sh, err := newShredder(st, dir, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func(i time.Duration, f func()) { shredRotateIdle, shredRotated = i, f }(shredRotateIdle, shredRotated)
	shredRotateIdle = 0
	enc := sh.encode(encodeOutbox("shop-7"))
	req := payment.AuthRequest{Key: "0190b7a4-0000-7000-8000-000000000001", AmountMinor: 1200, Currency: "KRW", Kind: "wallet", Scheme: "alipay",
		Code: testCode, MaskedCode: "2812…3456", CreatedAt: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}

	ack := func() uint64 { // seal one request, read its epoch, let it leave the outbox
		seq := enqueue(t, st, enc, req)
		stored, _ := st.Peek(1, nil)
		e, _ := shred.EpochOf(stored[0].Data)
		if err := st.Ack(seq); err != nil {
			t.Fatal(err)
		}
		return e
	}
	ack() // the first epoch is used, so the sweep below rotates
	var racing uint64
	shredRotated = func() { racing = ack(); shredRotated = func() {} }
	if err := sh.sweep(); err != nil {
		t.Fatal(err)
	}
	if cur, _ := sh.ring.Current(); racing != cur {
		t.Fatalf("the racing seal used epoch %d, not the new current %d", racing, cur)
	}
	if err := sh.sweep(); err != nil {
		t.Fatal(err)
	}
	if es := sh.ring.Epochs(); len(es) != 1 || es[0] <= racing {
		t.Fatalf("after the outbox emptied and a sweep: epochs %v, a request was sealed under %d", es, racing)
	}
}
