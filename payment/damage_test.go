package payment

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/walletless/walletless/store"
)

// damageSalePages scribbles over the element array of every page that holds sale id
// as a key (the current leaf and any old, freed copy), through a second descriptor:
// bbolt maps the file, so the running engine's next read sees it.
func damageSalePages(t *testing.T, path, id string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	const ps = 4096 // bbolt's page size: the OS page size on the test machines
	needle := []byte(id + `{"id":"` + id)
	n := 0
	for off := 0; ; {
		i := bytes.Index(raw[off:], needle)
		if i < 0 {
			break
		}
		page := (off + i) / ps * ps
		f.WriteAt([]byte{0x20, 0}, int64(page+8)) // no page type bbolt knows
		f.WriteAt(bytes.Repeat([]byte{0xA5}, 64), int64(page+16))
		off, n = page+ps, n+1
	}
	if n == 0 {
		t.Fatalf("sale %s not found in the file", id)
	}
}

// TestDamagedSaleAnswersErrors: a GET and a refund of a sale on a damaged page answer
// an error (ErrDamaged, naming the file and the command) instead of killing the
// engine, which keeps serving the other sales and taking new ones.
func TestDamagedSaleAnswersErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	h := newHarness(t, path, time.Minute)
	defer h.stop()
	ctx := context.Background()
	var ids []string
	for i := range 40 {
		s := h.sale(10_000, "KRW", fmt.Sprintf("28%016d", 1000+i))
		h.result(s.ID, "", ResultApproved, "")
		ids = append(ids, s.ID)
	}
	// Ids made in the same millisecond (the test clock stands still) sort randomly:
	// take the first and last in key order, on the first and last leaf pages.
	sort.Strings(ids)
	victim, other := ids[0], ids[len(ids)-1]
	// Damage the file while holding the store's write lock, so no commit of the
	// running engine (its first tick prunes) reuses a page between finding and
	// damaging it; rolled back, the transaction writes nothing.
	errRollback := errors.New("rollback")
	h.st.Update(func(*store.Tx) error { damageSalePages(t, path, victim); return errRollback })

	if _, err := h.e.Get(victim); !errors.Is(err, store.ErrDamaged) {
		t.Fatalf("Get of a sale on a damaged page = %v, want ErrDamaged", err)
	}
	if _, err := h.e.Refund(ctx, victim, 100); !errors.Is(err, store.ErrDamaged) {
		t.Fatalf("Refund of a sale on a damaged page = %v, want ErrDamaged", err)
	}
	// The engine is alive: other sales are served and refunded, new sales taken.
	if s := h.mustGet(other); s.Status != StatusApproved {
		t.Fatalf("other sale: %+v", s)
	}
	if _, err := h.e.Refund(ctx, other, 100); err != nil {
		t.Fatalf("refund of a sale on a good page: %v", err)
	}
	h.clock.Add(time.Hour) // the new sale's id sorts last, onto a good page
	s := h.sale(500, "KRW", fmt.Sprintf("28%016d", 9999))
	if got := h.mustGet(s.ID); got.Status != StatusAuthorizing {
		t.Fatalf("new sale after the damage: %+v", got)
	}
}
