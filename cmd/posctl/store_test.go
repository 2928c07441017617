package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/walletless/walletless/store"
)

func TestStoreCompact(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "posd.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.PutSale("a", nil, func(uint64) ([]byte, error) { return []byte(`{"id":"a"}`), nil })
	var out, errb bytes.Buffer
	// While posd (here: the open store) holds the file, compact refuses.
	if code := run(context.Background(), []string{"store", "compact", "-data", dir, "-timeout", "50ms"}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "stop posd") {
		t.Fatalf("compact while open: %d %q", code, errb.String())
	}
	s.Close()
	out.Reset()
	if code := run(context.Background(), []string{"store", "compact", "-db", path}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "bytes") {
		t.Fatalf("compact: %d %q %q", code, out.String(), errb.String())
	}
	s, err = store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if doc, err := s.GetSale("a"); err != nil || string(doc) != `{"id":"a"}` {
		t.Fatalf("after compact: %s %v", doc, err)
	}
	out.Reset()
	s.Close()
	if code := run(context.Background(), []string{"store", "check", "-db", path}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "ok (schema") {
		t.Fatalf("check: %d %q %q", code, out.String(), errb.String())
	}
	backup := filepath.Join(dir, "backup.db")
	out.Reset()
	if code := run(context.Background(), []string{"store", "backup", "-db", path, backup}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "checked and copied") {
		t.Fatalf("backup: %d %q %q", code, out.String(), errb.String())
	}
	if code := run(context.Background(), []string{"store", "check", "-db", backup}, nil, &out, &errb); code != 0 {
		t.Fatalf("check of the backup: %d %q", code, errb.String())
	}
	if code := run(context.Background(), []string{"store"}, nil, &out, &errb); code != 2 {
		t.Fatalf("usage: %d", code)
	}
}

// TestStoreDamaged: check reports a damaged file (naming the salvage command) without
// panicking, and salvage copies its records into a file that passes check.
func TestStoreDamaged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "posd.db")
	s, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	for i := range n {
		id := fmt.Sprintf("sale-%04d", i)
		if _, err := s.PutSale(id, []byte(`{"v":1}`), func(uint64) ([]byte, error) {
			return []byte(fmt.Sprintf(`{"id":%q,"status":"approved","amount_minor":%d,"pad":%q}`, id, i, strings.Repeat("x", 200))), nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// Both meta pages damaged.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{16, 4096 + 16} {
		f.WriteAt(bytes.Repeat([]byte{0xA5}, 64), off)
	}
	f.Close()

	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"store", "check", "-db", path}, nil, &out, &errb); code != 1 ||
		!strings.Contains(errb.String(), "damaged database file "+path) || !strings.Contains(errb.String(), "posctl store salvage "+path) {
		t.Fatalf("check of a damaged file: %d %q %q", code, out.String(), errb.String())
	}
	newPath := filepath.Join(dir, "posd-salvaged.db")
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"store", "salvage", path, newPath}, nil, &out, &errb); code != 0 ||
		!regexp.MustCompile(`sales +400 `).MatchString(out.String()) || !strings.Contains(out.String(), "passes the check") {
		t.Fatalf("salvage: %d %q %q", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run(context.Background(), []string{"store", "check", "-db", newPath}, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "ok (schema") {
		t.Fatalf("check of the salvaged file: %d %q %q", code, out.String(), errb.String())
	}
	// OUT must not exist.
	errb.Reset()
	if code := run(context.Background(), []string{"store", "salvage", path, newPath}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "already exists") {
		t.Fatalf("salvage onto an existing file: %d %q", code, errb.String())
	}
	// A file cut to a stub: reported, never a panic.
	if err := os.Truncate(path, 1000); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := run(context.Background(), []string{"store", "check", "-db", path}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "damaged database file") {
		t.Fatalf("check of a stub: %d %q", code, errb.String())
	}
	errb.Reset()
	if code := run(context.Background(), []string{"store", "salvage", path, filepath.Join(dir, "x.db")}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "nothing can be read") {
		t.Fatalf("salvage of a stub: %d %q", code, errb.String())
	}
}
