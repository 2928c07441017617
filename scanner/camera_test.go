package scanner

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunImagesSource(t *testing.T) {
	dir := t.TempDir()
	for i, g := range []Gray{
		synth{w: 320, h: 240, code: qrModules(t, testQR), module: 3, noise: 5, seed: 1}.render(),
		noiseFrame(320, 240, 1),
	} {
		fh, err := os.Create(filepath.Join(dir, string(rune('a'+i))+".pgm"))
		if err != nil {
			t.Fatal(err)
		}
		WritePGM(fh, g)
		fh.Close()
	}
	r := start(t, Config{Source: "images:" + dir}, nil)
	if s := r.next(); s.Text != testQR || s.Symbology != "qr" {
		t.Fatalf("scan %q/%q", s.Text, s.Symbology)
	}
	r.wait()
	if r.err != nil {
		t.Fatalf("Run = %v", r.err)
	}
	if err := Run(t.Context(), Config{Source: "images:" + filepath.Join(dir, "missing")}, nil, nil, make(chan Scan)); err == nil {
		t.Error("missing image directory accepted")
	}
}

func TestRunCameraAbsent(t *testing.T) {
	r := start(t, fastRetry(Config{Source: "camera:" + filepath.Join(t.TempDir(), "video0") + "@1280x720"}), nil)
	st := r.waitFor("an error", func(s State) bool { return s.LastError != "" })
	if !strings.Contains(st.LastError, "camera unavailable") || st.Connected {
		t.Errorf("state %+v", st)
	}
	r.stop()
	if n := strings.Count(r.log.String(), "camera not available"); n != 1 {
		t.Errorf("logged %d times:\n%s", n, r.log.String())
	}
}

func TestParseCamera(t *testing.T) {
	for _, tt := range []struct {
		in   string
		path string
		w, h int
		bad  bool
	}{
		{"/dev/video0", "/dev/video0", 640, 480, false},
		{"/dev/video2@1280x720", "/dev/video2", 1280, 720, false},
		{"/dev/video0@big", "", 0, 0, true},
		{"/dev/video0@1x1", "", 0, 0, true},
		{"@640x480", "", 0, 0, true},
	} {
		p, w, h, err := parseCamera(tt.in)
		if tt.bad {
			if !errors.Is(err, ErrConfig) {
				t.Errorf("parseCamera(%q) = %v, want ErrConfig", tt.in, err)
			}
			continue
		}
		if err != nil || p != tt.path || w != tt.w || h != tt.h {
			t.Errorf("parseCamera(%q) = %q %d %d %v", tt.in, p, w, h, err)
		}
	}
}
