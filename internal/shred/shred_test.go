package shred

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walletless/walletless/internal/secretfile"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestSealUnsealAcrossReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	k, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	plain := []byte(`{"code":"281234567890123456"}`)
	sealed, err := k.Seal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if !Sealed(sealed) || bytes.Contains(sealed, []byte("2812345678")) || len(sealed) != len(plain)+Overhead {
		t.Fatalf("sealed value %q", sealed)
	}
	if again, _ := k.Seal(plain); bytes.Equal(again, sealed) {
		t.Error("two seals of the same value are equal (nonce reused)")
	}
	e1, _ := k.Current()
	if got, ok := EpochOf(sealed); !ok || got != e1 {
		t.Fatalf("epoch %d, want %d", got, e1)
	}
	if mode(t, dir) != 0o700 || mode(t, filepath.Join(dir, strings.TrimPrefix(k.path(e1), dir+"/"))) != 0o600 {
		t.Fatalf("modes: dir %04o", mode(t, dir))
	}

	// Another process (a restart) reads it and starts an epoch of its own.
	k2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if e2, _ := k2.Current(); e2 <= e1 {
		t.Errorf("epoch after reopen %d, want > %d", e2, e1)
	}
	got, err := k2.Unseal(sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("unseal after reopen: %q %v", got, err)
	}
	if len(k2.Epochs()) != 2 {
		t.Errorf("epochs %v", k2.Epochs())
	}

	// Damage is detected, and errors never carry the content.
	for name, bad := range map[string][]byte{
		"flipped byte": append(append([]byte(nil), sealed[:len(sealed)-1]...), sealed[len(sealed)-1]^1),
		"truncated":    sealed[:Overhead-1],
	} {
		if _, err := k2.Unseal(bad); !errors.Is(err, ErrCorrupt) || strings.Contains(err.Error(), "2812") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := k2.Unseal(plain); !errors.Is(err, ErrNotSealed) {
		t.Errorf("plain value: %v", err)
	}
}

// TestDestroyShreds: a destroyed epoch's sealed values are unreadable, its key file is
// zeroed before it is unlinked (a hard link made beforehand sees only zeros), and the
// current epoch cannot be destroyed.
func TestDestroyShreds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	k, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := k.Current()
	sealed, _ := k.Seal([]byte("secret"))
	if err := k.Destroy(old); !errors.Is(err, ErrCurrent) {
		t.Fatalf("destroy current: %v", err)
	}
	cur, err := k.Rotate()
	if err != nil || cur <= old {
		t.Fatalf("rotate: %d %v", cur, err)
	}
	fresh, _ := k.Seal([]byte("fresh"))
	witness := filepath.Join(t.TempDir(), "witness")
	if err := os.Link(k.path(old), witness); err != nil {
		t.Fatal(err)
	}
	destroyed, err := k.Retain(func(e uint64) bool { return false })
	if err != nil || len(destroyed) != 1 || destroyed[0] != old {
		t.Fatalf("retain: %v %v", destroyed, err)
	}
	if _, err := os.Stat(k.path(old)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("key file still there: %v", err)
	}
	raw, _ := os.ReadFile(witness)
	if len(raw) != keySize || !bytes.Equal(raw, make([]byte, keySize)) {
		t.Errorf("the destroyed key's blocks still hold %x", raw)
	}
	if _, err := k.Unseal(sealed); !errors.Is(err, ErrNoKey) || !strings.Contains(err.Error(), "epoch") {
		t.Errorf("unseal after destroy: %v", err)
	}
	if got, err := k.Unseal(fresh); err != nil || string(got) != "fresh" {
		t.Errorf("current epoch: %q %v", got, err)
	}
	// A reopened keyring does not bring the destroyed epoch back.
	k2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k2.Has(old) {
		t.Error("destroyed epoch is back after reopen")
	}
	// Retain keeps what is in use.
	if d, err := k2.Retain(func(e uint64) bool { return e == cur }); err != nil || len(d) != 0 || !k2.Has(cur) {
		t.Errorf("retain in use: %v %v", d, err)
	}
}

// TestOpenKeyFilesRefused: an epoch key readable by others is refused with the chmod
// to run; a key of the wrong size too.
func TestOpenKeyFilesRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	k, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := k.Current()
	os.Chmod(k.path(e), 0o644)
	if _, err := Open(dir); !errors.Is(err, secretfile.ErrTooOpen) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("0644 key: %v", err)
	}
	os.Chmod(k.path(e), 0o600)
	os.WriteFile(k.path(e), []byte("short"), 0o600)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "holds 5 bytes") {
		t.Fatalf("short key: %v", err)
	}
}
