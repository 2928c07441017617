package payment

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/walletless/walletless/store"
)

// TestUsedCodesAreKeyed: with Config.CodeKey the record of a used one-time code is an
// HMAC under the device secret, not the plain hash that can be brute-forced; a plain
// record left by an older version still refuses the code within the reuse window.
func TestUsedCodesAreKeyed(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	path := filepath.Join(t.TempDir(), "db")
	withKey := func(c *Config) { c.CodeKey = key }
	h := newHarness(t, path, time.Minute, withKey)
	defer func() { h.stop() }()
	ctx := context.Background()

	s := h.sale(500, "KRW", alipay)
	h.result(s.ID, "", ResultApproved, "")
	var plain, keyed bool
	write, _ := h.e.codeHashes(alipay)
	h.st.View(func(tx *store.Tx) error {
		_, plain = tx.CodeSeen(legacyCodeHash(alipay))
		_, keyed = tx.CodeSeen(write)
		return nil
	})
	if plain || !keyed {
		t.Fatalf("used code records: plain %v, keyed %v", plain, keyed)
	}
	// Another key gives another record: the record depends on the secret.
	other := &Engine{cfg: Config{CodeKey: []byte("another key of the same length!!")}}
	if w2, _ := other.codeHashes(alipay); string(w2) == string(write) {
		t.Fatal("the record does not depend on the key")
	}
	// The keyed record refuses the code again.
	h.e.Create(ctx, 700, "KRW")
	if _, ok, err := h.e.Scan(ctx, alipay); ok || !errors.Is(err, ErrCodeReused) {
		t.Fatalf("reused code: ok=%v err=%v", ok, err)
	}
	// A plain record written by an older version (before CodeKey) still counts.
	h.st.Update(func(tx *store.Tx) error { return tx.PutCode(legacyCodeHash(alipay2), h.clock.Now()) })
	if _, ok, err := h.e.Scan(ctx, alipay2); ok || !errors.Is(err, ErrCodeReused) {
		t.Fatalf("code with a legacy record: ok=%v err=%v", ok, err)
	}
}
