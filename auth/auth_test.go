package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/walletless/walletless/internal/secretfile"
)

func TestCreateCheckRevokePersist(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tokens.json")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tok, info, err := s.Create("till-1", RoleClerk)
	if err != nil || info.Role != RoleClerk || !strings.HasPrefix(tok, TokenPrefix) || len(tok) < 40 {
		t.Fatalf("create: %q %+v %v", tok, info, err)
	}
	if _, _, err := s.Create("till-1", RoleManager); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate name: %v", err)
	}
	for _, bad := range []string{"", "a b", "x/y", strings.Repeat("a", 65)} {
		if _, _, err := s.Create(bad, RoleClerk); !errors.Is(err, ErrBadName) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	if _, _, err := s.Create("boss", Role("root")); !errors.Is(err, ErrBadRole) {
		t.Errorf("bad role: %v", err)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), tok) || strings.Contains(string(raw), strings.TrimPrefix(tok, TokenPrefix)) {
		t.Fatal("the token file holds the token itself, not its hash")
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("tokens file mode %v", fi.Mode())
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s2.Check(tok); !ok || got.Name != "till-1" || got.Role != RoleClerk {
		t.Fatalf("check after reopen: %+v %v", got, ok)
	}
	if _, ok := s2.Check(tok + "x"); ok {
		t.Error("a longer token passed")
	}
	if _, ok := s2.Check(""); ok {
		t.Error("the empty token passed")
	}
	if err := s2.Revoke("till-1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s2.Check(tok); ok {
		t.Error("revoked token still passes")
	}
	if err := s2.Revoke("till-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke twice: %v", err)
	}
	s3, _ := Open(path)
	if _, ok := s3.Check(tok); ok || len(s3.List()) != 0 {
		t.Errorf("revocation not persisted: %v", s3.List())
	}
}

func TestEnsureAdmin(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(filepath.Join(dir, "tokens.json"))
	file := filepath.Join(dir, "admin.token")
	tok, made, err := s.EnsureAdmin(file)
	if err != nil || !made {
		t.Fatalf("first start: %v %v", made, err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: %v %v", fi, err)
	}
	if info, ok := s.Check(tok); !ok || info.Role != RoleManager || info.Name != AdminName {
		t.Fatalf("admin token: %+v %v", info, ok)
	}
	again, made, err := s.EnsureAdmin(file)
	if err != nil || made || again != tok {
		t.Fatalf("second start: %v %v", made, err)
	}
	if err := s.Revoke(AdminName); !errors.Is(err, ErrAdmin) {
		t.Errorf("revoke admin: %v", err)
	}
	// A lost tokens.json: the file's token is unknown, a new one replaces it.
	s2, _ := Open(filepath.Join(dir, "other.json"))
	fresh, made, err := s2.EnsureAdmin(file)
	if err != nil || !made || fresh == tok {
		t.Fatalf("unknown admin token kept: %v %v", made, err)
	}
	// A group-readable admin.token is refused with the chmod to run.
	os.Chmod(file, 0o644)
	if _, _, err := s2.EnsureAdmin(file); !errors.Is(err, secretfile.ErrTooOpen) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("0644 admin.token: %v", err)
	}
	if _, err := ReadTokenFile(file); !errors.Is(err, secretfile.ErrTooOpen) {
		t.Errorf("ReadTokenFile 0644: %v", err)
	}
}

func TestRoles(t *testing.T) {
	if !RoleManager.Allows(RoleClerk) || !RoleClerk.Allows(RoleClerk) || RoleClerk.Allows(RoleManager) || Role("").Allows(RoleClerk) {
		t.Fatal("role order")
	}
}

func TestOpenRefusesOpenAndBadFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tokens.json")
	os.WriteFile(p, []byte(`{"version":1,"tokens":[]}`), 0o644)
	if _, err := Open(p); !errors.Is(err, secretfile.ErrTooOpen) {
		t.Errorf("0644: %v", err)
	}
	os.Chmod(p, 0o600)
	for _, body := range []string{`{"version":2,"tokens":[]}`, `{"version":1,"tokens":[{"name":"a","role":"clerk","sha256":"zz"}]}`, `{"version":1,"extra":1}`} {
		os.WriteFile(p, []byte(body), 0o600)
		if _, err := Open(p); err == nil {
			t.Errorf("%s accepted", body)
		}
	}
}
