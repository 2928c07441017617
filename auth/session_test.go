package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSessionsExpireWhenIdle(t *testing.T) {
	now := time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC)
	s := &Sessions{TTL: time.Hour, Now: func() time.Time { return now }}
	id, err := s.Start(Info{Name: "kim", Role: RoleClerk})
	if err != nil || len(id) < 40 {
		t.Fatalf("start: %q %v", id, err)
	}
	if got, ok := s.Check(id); !ok || got.Name != "kim" {
		t.Fatalf("check: %+v %v", got, ok)
	}
	now = now.Add(50 * time.Minute)
	if _, ok := s.Check(id); !ok {
		t.Fatal("a session used 50 minutes ago expired with a 1 h TTL")
	}
	now = now.Add(61 * time.Minute)
	if _, ok := s.Check(id); ok {
		t.Fatal("an idle session outlived its TTL")
	}
	if _, ok := s.Check(""); ok {
		t.Fatal("the empty id passed")
	}
	id2, _ := s.Start(Info{Name: "lee", Role: RoleManager})
	s.EndFor("lee")
	if _, ok := s.Check(id2); ok {
		t.Fatal("EndFor left the session alive")
	}
	id3, _ := s.Start(Info{Name: "lee", Role: RoleManager})
	s.End(id3)
	if _, ok := s.Check(id3); ok {
		t.Fatal("End left the session alive")
	}
}

func TestPINsSetCheckPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pins.json")
	p, err := OpenPINs(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Set("kim", RoleClerk, "12a4"); !errors.Is(err, ErrBadPIN) {
		t.Errorf("letters in a PIN: %v", err)
	}
	if _, err := p.Set("kim", RoleClerk, "123"); !errors.Is(err, ErrBadPIN) {
		t.Errorf("short PIN: %v", err)
	}
	if _, err := p.Set("kim", RoleClerk, "482913"); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if strings.Contains(string(raw), "482913") {
		t.Fatal("the PIN file holds the PIN")
	}
	p2, err := OpenPINs(path)
	if err != nil {
		t.Fatal(err)
	}
	if info, ok := p2.Check("kim", "482913"); !ok || info.Role != RoleClerk {
		t.Fatalf("check: %+v %v", info, ok)
	}
	for _, bad := range [][2]string{{"kim", "482914"}, {"kim", ""}, {"lee", "482913"}, {"", "482913"}} {
		if _, ok := p2.Check(bad[0], bad[1]); ok {
			t.Errorf("%q/%q passed", bad[0], bad[1])
		}
	}
	if err := p2.Remove("kim"); err != nil {
		t.Fatal(err)
	}
	if _, ok := p2.Check("kim", "482913"); ok {
		t.Fatal("a removed PIN passed")
	}
}
