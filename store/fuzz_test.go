package store

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var (
	fuzzOnce sync.Once
	fuzzFile []byte
)

// fuzzBase is a small valid store file (a few branch pages, free pages), built once.
func fuzzBase(t testing.TB) []byte {
	fuzzOnce.Do(func() {
		path, _ := buildStore(t, t.TempDir(), 200)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		fuzzFile = b
	})
	return fuzzFile
}

// FuzzDamagedStore flips bytes at fuzzed offsets of a valid store file (and cuts it
// at a fuzzed length) and checks that Open, Check, reads and Salvage never panic or
// fault, and that whatever Salvage writes passes Check.
func FuzzDamagedStore(f *testing.F) {
	seed := func(flips ...uint32) []byte {
		b := make([]byte, 4*len(flips))
		for i, v := range flips {
			binary.LittleEndian.PutUint32(b[4*i:], v)
		}
		return b
	}
	f.Add(seed(16), uint32(0))                  // meta 0
	f.Add(seed(16, 4096+16), uint32(0))         // both metas
	f.Add(seed(3*4096+10), uint32(0))           // a count
	f.Add(seed(5*4096+8, 5*4096+20), uint32(0)) // a type and an element
	f.Add(seed(), uint32(6*4096))               // truncated
	f.Fuzz(func(t *testing.T, flips []byte, cut uint32) {
		base := fuzzBase(t)
		b := append([]byte(nil), base...)
		for i := 0; i+4 <= len(flips) && i < 4*64; i += 4 {
			v := binary.LittleEndian.Uint32(flips[i:])
			off := int(v>>8) % len(b)
			b[off] ^= byte(v) | 1
		}
		if cut != 0 && int(cut) < len(b) {
			b = b[:cut]
		}
		dir := t.TempDir()
		path := filepath.Join(dir, "posd.db")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		sound := false
		if s, err := Open(path, Options{Verify: true, ReadOnly: true}); err == nil {
			_ = s.Check()
			s.Close()
			sound = true
		} else if !errors.Is(err, ErrDamaged) {
			t.Logf("Open: %v", err) // not damage (e.g. a newer schema): fine, no panic
		}
		// Without the full check, reads over the damage answer errors (the net under
		// a page damaged while posd runs).
		if s, err := Open(path, Options{ReadOnly: true}); err == nil {
			_ = s.ForEachSale(func(string, []byte) error { return nil })
			_, _ = s.Peek(1000, nil)
			_, _ = s.GetSale("0190f1c2-00000100-7000-8000-000000000000")
			_ = s.Check()
			s.Close()
		}
		// Writes on a file that passed the check (flips inside values): posd taking
		// sales and pruning. Not on a damaged file: bbolt writing through a damaged
		// page can corrupt the Go heap, a fatal error no recover catches — which is
		// why posd checks the file before its first write (docs/operations.md).
		if sound {
			if s, err := Open(path, Options{NoSync: true}); err == nil {
				_, _ = s.PutSale("0190f1c2-00000100-7000-8000-000000000001", []byte("m"), func(uint64) ([]byte, error) { return []byte("{}"), nil })
				_, _ = s.PruneSales(50, func(string, []byte) (bool, bool) { return true, false })
				_ = s.Ack(1, 2, 3)
				s.Close()
			}
		}
		out := filepath.Join(dir, "out.db")
		if _, err := Salvage(path, out); err != nil {
			if _, serr := os.Stat(out); serr == nil && !errors.Is(err, ErrDamaged) {
				// Salvage wrote a file but it did not pass its own check.
				t.Fatalf("Salvage: %v", err)
			}
		}
	})
}
