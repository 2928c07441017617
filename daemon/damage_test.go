package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/store"
)

// TestRefusesDamagedDatabase: posd does not start on a damaged file (here a leaf
// whose count was zeroed, which bbolt alone reads as six sales that do not exist); the
// error names the file and the command that salvages it.
func TestRefusesDamagedDatabase(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.API.Addr = "127.0.0.1:0"
	path := filepath.Join(cfg.DataDir, DBFile)
	st, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		id := fmt.Sprintf("sale-%04d", i)
		doc := fmt.Sprintf(`{"id":%q,"status":"approved","pad":%q}`, id, strings.Repeat("x", 300))
		if _, err := st.PutSale(id, nil, func(uint64) ([]byte, error) { return []byte(doc), nil }); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	needle := []byte(`sale-0001{"id":"sale-0001"`)
	for off := 0; ; {
		i := bytes.Index(raw[off:], needle)
		if i < 0 {
			break
		}
		page := (off + i) / 4096 * 4096
		f.WriteAt([]byte{0, 0}, int64(page+10)) // the page's element count
		off = page + 4096
	}
	f.Close()

	// Without the check posd would start and run: bound the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = Run(ctx, Options{Config: cfg, Stdin: strings.NewReader("")})
	if !errors.Is(err, store.ErrDamaged) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "posctl store salvage "+path) {
		t.Fatalf("Run on a damaged file = %v, want ErrDamaged naming the file and the command", err)
	}
}
