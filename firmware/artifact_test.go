package firmware

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"aead.dev/minisign"

	"github.com/walletless/walletless/fleet"
)

type testKey struct {
	pub  minisign.PublicKey
	priv minisign.PrivateKey
}

func newKey(t testing.TB) testKey {
	t.Helper()
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{pub, priv}
}

// packBytes packs files (name → content) into an artifact in memory.
func packBytes(t testing.TB, k testKey, m Manifest, files map[string]string) []byte {
	t.Helper()
	dir := t.TempDir()
	var pf []PackFile
	for _, name := range sortedKeys(files) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(files[name]), 0o755); err != nil {
			t.Fatal(err)
		}
		pf = append(pf, PackFile{Name: name, Path: p})
	}
	var buf bytes.Buffer
	if _, err := Pack(&buf, k.priv, m, pf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sortedKeys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return ks
}

func manifest(version, min string) Manifest {
	return Manifest{Version: version, MinVersion: min, Arch: runtime.GOARCH, Board: "rpi4"}
}

// slotsWith sets up a files backend running slot a (posd "old-a"), with "old-b" in b.
func slotsWith(t *testing.T) Files {
	t.Helper()
	f := Files{Dir: t.TempDir()}
	for _, s := range []string{SlotA, SlotB} {
		os.MkdirAll(filepath.Join(f.Dir, s), 0o755)
		os.WriteFile(filepath.Join(f.Dir, s, "posd"), []byte("old-"+s), 0o755)
	}
	if err := f.link(SlotA); err != nil {
		t.Fatal(err)
	}
	return f
}

func slotContent(t *testing.T, f Files, slot string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.Dir, slot, "posd"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func install(t *testing.T, f Files, art []byte, keys []minisign.PublicKey, target Target) error {
	t.Helper()
	path := filepath.Join(t.TempDir(), "x.wlf")
	os.WriteFile(path, art, 0o600)
	_, verr := Verify(path, keys, target)
	err := installStream(f, art, keys, target)
	if (verr == nil) != (err == nil) || verr != nil && !sameReason(verr, err) {
		t.Errorf("Verify says %v, the streaming install %v", verr, err)
	}
	return err
}

func sameReason(a, b error) bool {
	for _, r := range []error{ErrMalformed, ErrTruncated, ErrSignature, ErrUntrustedKey, ErrDowngrade, ErrArch, ErrBoard, ErrPayloadHash} {
		if errors.Is(a, r) != errors.Is(b, r) {
			return false
		}
	}
	return true
}

func installStream(f Files, art []byte, keys []minisign.PublicKey, target Target) error {
	br := bufio.NewReader(bytes.NewReader(art))
	h, err := ReadHeader(br, keys)
	if err != nil {
		return err
	}
	if err := target.Accept(h.Manifest); err != nil {
		return err
	}
	return f.Install(SlotB, br, h, nil)
}

func TestInstallAndRefusals(t *testing.T) {
	k, other := newKey(t), newKey(t)
	keys := []minisign.PublicKey{k.pub}
	target := Target{Arch: runtime.GOARCH, Board: "rpi4", Floor: "1.2"}
	good := packBytes(t, k, manifest("1.3.0", "1.2"), map[string]string{"posd": "new posd binary", "posctl": "new posctl"})
	flip := func(b []byte, at int) []byte { c := bytes.Clone(b); c[at] ^= 0x01; return c }
	manifestAt := bytes.Index(good, []byte(`"version"`))
	cases := []struct {
		name string
		art  []byte
		want error
	}{
		{"below the floor", packBytes(t, k, manifest("1.1.9", ""), map[string]string{"posd": "x"}), ErrDowngrade},
		{"another arch", packBytes(t, k, Manifest{Version: "1.3", Arch: "mips", Board: "rpi4"}, map[string]string{"posd": "x"}), ErrArch},
		{"another board", packBytes(t, k, Manifest{Version: "1.3", Arch: runtime.GOARCH, Board: "cm4"}, map[string]string{"posd": "x"}), ErrBoard},
		{"bit flipped in a payload", flip(good, len(good)-3), ErrPayloadHash},
		{"bit flipped in the manifest", flip(good, manifestAt+12), ErrSignature},
		{"truncated in a payload", good[:len(good)-4], ErrTruncated},
		{"truncated in the manifest", good[:manifestAt+5], ErrTruncated},
		{"trailing data", append(bytes.Clone(good), 'x'), ErrMalformed},
		{"untrusted key", packBytes(t, other, manifest("1.3.0", ""), map[string]string{"posd": "x"}), ErrUntrustedKey},
		{"not an artifact", []byte("#!/bin/sh\necho this is not a firmware file\n"), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := slotsWith(t)
			err := install(t, f, c.art, keys, target)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if !Rejection(err) {
				t.Errorf("%v is not counted as a rejection", err)
			}
			if got := slotContent(t, f, SlotB); got != "old-b" {
				t.Errorf("slot b holds %q after a refused artifact", got)
			}
			if run, _ := f.Running(); run != SlotA || slotContent(t, f, SlotA) != "old-a" {
				t.Errorf("the running slot changed")
			}
			if ents, _ := os.ReadDir(f.Dir); len(ents) != 3 {
				t.Errorf("left behind in the slots dir: %v", ents)
			}
		})
	}
	t.Run("good", func(t *testing.T) {
		f := slotsWith(t)
		if err := install(t, f, good, keys, target); err != nil {
			t.Fatal(err)
		}
		if got := slotContent(t, f, SlotB); got != "new posd binary" {
			t.Fatalf("slot b holds %q", got)
		}
		if run, _ := f.Running(); run != SlotA {
			t.Fatal("install switched")
		}
		info, _ := os.Stat(filepath.Join(f.Dir, SlotB, "posd"))
		if info.Mode().Perm() != 0o755 {
			t.Errorf("mode %v", info.Mode())
		}
		if err := f.Install(SlotA, bytes.NewReader(nil), Header{}, nil); err == nil {
			t.Error("install into the running slot was allowed")
		}
	})
}

func TestVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"1.10", "1.9", 1}, {"v1.2.0", "1.2", 0}, {"1.2", "1.2.1", -1}, {"", "0.1", -1}, {"2", "1.99.99", 1}} {
		if got := CompareVersions(c.a, c.b); got != c.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	for _, bad := range []string{"", "v", "1..2", "1.2.3.4.5", "1.x", "-1", "1.2-rc1", "１"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
}

func FuzzReadHeader(f *testing.F) {
	k := newKey(f)
	good := packBytes(f, k, manifest("1.0", ""), map[string]string{"posd": "abc"})
	f.Add(good)
	f.Add(good[:40])
	f.Add([]byte(Magic + "manifest 3\n{}\nsignature 1\nx"))
	f.Fuzz(func(t *testing.T, b []byte) {
		br := bufio.NewReader(bytes.NewReader(b))
		h, err := ReadHeader(br, []minisign.PublicKey{k.pub})
		if err != nil {
			return
		}
		dir := filepath.Join(t.TempDir(), "stage")
		if err := Extract(br, h, dir, nil); err == nil {
			if !bytes.Equal(b, good) {
				t.Fatalf("an artifact other than the signed one extracted")
			}
		} else if _, serr := os.Stat(dir); serr == nil {
			t.Fatalf("a failed extract left its staging dir")
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"v":1,"version":"1.0","arch":"arm64","board":"any","created":"2026-01-01T00:00:00Z","payloads":[{"name":"posd","size":1,"sha256":"` + string(bytes.Repeat([]byte("a"), 64)) + `","mode":493}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		for _, p := range m.Payloads {
			if !validName(p.Name) || p.Size < 0 {
				t.Fatalf("bad payload accepted: %+v", p)
			}
		}
	})
}

func fleetAll() fleet.Target { return fleet.Target{All: true} }
