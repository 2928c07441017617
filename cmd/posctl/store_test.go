package main

import (
	"bytes"
	"context"
	"path/filepath"
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
	if code := run(context.Background(), []string{"store"}, nil, &out, &errb); code != 2 {
		t.Fatalf("usage: %d", code)
	}
}
