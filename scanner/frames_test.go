package scanner

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sliceSource is a FrameSource over frames held in memory.
type sliceSource struct {
	frames []Frame
	errs   map[int]error
	i      int
}

func (s *sliceSource) Next(ctx context.Context) (Frame, error) {
	if s.i >= len(s.frames) {
		return Frame{}, io.EOF
	}
	i := s.i
	s.i++
	if err := s.errs[i]; err != nil {
		return Frame{Name: "bad"}, err
	}
	return s.frames[i], nil
}

func (s *sliceSource) Close() error { return nil }

func runFrames(t *testing.T, src FrameSource, cfg FrameConfig) []Scan {
	t.Helper()
	out := make(chan Scan, 64)
	if err := RunFrames(context.Background(), src, cfg, nil, out); err != nil {
		t.Fatal(err)
	}
	close(out)
	var got []Scan
	for s := range out {
		got = append(got, s)
	}
	return got
}

func TestRunFramesConfirm(t *testing.T) {
	pay := synth{w: 320, h: 240, code: qrModules(t, testQR), module: 3, noise: 5, seed: 1}.render()
	other := synth{w: 480, h: 320, code: code128Modules(t, test128), module: 2, barH: 80, noise: 3, seed: 2}.render()
	empty := noiseFrame(320, 240, 3)
	at := testTime
	f := func(g Gray) Frame { at = at.Add(100 * time.Millisecond); return Frame{Gray: g, At: at} }

	// A payment code passes its own check and counts from one frame; the same code in
	// the next frames is a duplicate.
	got := runFrames(t, &sliceSource{frames: []Frame{f(empty), f(pay), f(pay), f(pay)}}, FrameConfig{Dedup: time.Second})
	if len(got) != 1 || got[0].Text != testQR || got[0].Symbology != "qr" {
		t.Fatalf("payment code: %v", got)
	}

	// A code that fails its checks must be seen twice close together.
	st := new(Status)
	got = runFrames(t, &sliceSource{frames: []Frame{f(other), f(empty), f(empty), f(empty), f(empty), f(other), f(empty), f(other)}, errs: map[int]error{6: errors.New("camera hiccup")}},
		FrameConfig{Dedup: time.Second, Status: st})
	if len(got) != 1 || got[0].Text != test128 || got[0].Symbology != "code128" {
		t.Fatalf("unchecked code: %v", got)
	}
	if s := st.State(); s.Scans != 1 || !strings.Contains(s.LastError, "hiccup") {
		t.Errorf("state %+v", s)
	}
	// Seen once only: never a scan.
	if got := runFrames(t, &sliceSource{frames: []Frame{f(other), f(empty), f(empty), f(empty), f(empty)}}, FrameConfig{}); len(got) != 0 {
		t.Fatalf("single sighting became a scan: %v", got)
	}
}

func TestRunFramesImageDir(t *testing.T) {
	dir := t.TempDir()
	frames := []Gray{
		noiseFrame(320, 240, 1),
		synth{w: 320, h: 240, code: qrModules(t, testQR), module: 3, noise: 5, seed: 1}.render(),
		noiseFrame(320, 240, 2),
	}
	for i, g := range frames {
		fh, err := os.Create(filepath.Join(dir, "frame"+string(rune('0'+i))+".pgm"))
		if err != nil {
			t.Fatal(err)
		}
		if err := WritePGM(fh, g); err != nil {
			t.Fatal(err)
		}
		fh.Close()
	}
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o644)
	src, err := NewImageSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := runFrames(t, src, FrameConfig{}); len(got) != 1 || got[0].Text != testQR {
		t.Fatalf("scans %v", got)
	}

	// Cancellation stops a paced source promptly.
	src, _ = NewImageSource(dir)
	src.Interval = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunFrames(ctx, src, FrameConfig{}, nil, make(chan Scan, 4)) }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(guard):
		t.Fatal("RunFrames ignored cancel")
	}
}
