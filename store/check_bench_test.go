package store

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	bench100kOnce sync.Once
	bench100kPath string
)

// store100k builds (once per run) a file of 100,000 sales through the store's API,
// each with its outbox entry (half of them acked), a refund and in-doubt index entry
// for every tenth: about what posd's file holds after 100,000 sales.
func store100k(b *testing.B) string {
	bench100kOnce.Do(func() {
		dir, err := os.MkdirTemp("", "store100k")
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		bench100kPath, _ = buildStore(b, dir, 100_000)
		fi, _ := os.Stat(bench100kPath)
		b.Logf("built 100,000 sales in %v: %d bytes", time.Since(start).Round(time.Millisecond), fi.Size())
	})
	return bench100kPath
}

// BenchmarkCheck100k times what posd does at start on a 100,000-sale file: the
// page walk (verifyFile), bbolt's own check, and both together (Open with Verify).
//
//	go test -run '^$' -bench Check100k -benchtime 5x ./store/
func BenchmarkCheck100k(b *testing.B) {
	path := store100k(b)
	b.Cleanup(func() { os.RemoveAll(filepath.Dir(path)) })
	b.Run("pages", func(b *testing.B) {
		for b.Loop() {
			if err := verifyFile(path); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bbolt", func(b *testing.B) {
		s, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		for b.Loop() {
			if err := s.boltCheck(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("open-verify", func(b *testing.B) {
		for b.Loop() {
			s, err := Open(path, Options{Verify: true})
			if err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
	})
	b.Run("check", func(b *testing.B) {
		s, err := Open(path, Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		for b.Loop() {
			if err := s.Check(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
