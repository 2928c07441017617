package payment

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEmptyBatchTotalsAreAnEmptyArray: an empty batch's totals are [] in JSON (the
// HTTP API) as on the wire, never null (docs/protocol.md, BatchClose; issue 15 #5):
// the open batch, a closed empty batch, and that batch read back from the store.
func TestEmptyBatchTotalsAreAnEmptyArray(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute)
	cur, err := h.e.CurrentBatch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	closed := h.mustClose()
	got, err := h.e.GetBatch(closed.ID)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]Batch{"current": cur, "closed": closed, "read back": got} {
		raw, _ := json.Marshal(b)
		if !strings.Contains(string(raw), `"totals":[]`) {
			t.Errorf("%s empty batch: %s, want \"totals\":[]", name, raw)
		}
	}
}
