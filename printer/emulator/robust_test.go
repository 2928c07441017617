package emulator

import (
	"strings"
	"testing"
)

func TestRenderWarnsAndContinues(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		data       []byte
		text       string
	}{
		{"unknown ESC", "unknown command ESC", []byte("a\x1b\x01b\n"), "ab"},
		{"truncated", "truncated", []byte("abc\x1d(k\x05\x00"), "abc"},
		{"control byte", "control byte 0x07", []byte("x\x07y\n"), "xy"},
		{"page mode", "page mode", []byte("\x1bLz\n"), "z"},
		{"pdf417", "not QR", []byte("\x1d(k\x03\x000A\x00p\n"), "p"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Render(tc.data, Options{})
			if len(res.Warnings) == 0 || !strings.Contains(res.Warnings[0].Msg, tc.want) {
				t.Errorf("warnings %v, want one with %q", res.Warnings, tc.want)
			}
			if !strings.Contains(res.Text, tc.text) {
				t.Errorf("text %q lacks %q", res.Text, tc.text)
			}
		})
	}
}

func TestRenderPaperCap(t *testing.T) {
	data := []byte(strings.Repeat("\x1bd\xff", 1000))
	res := Render(data, Options{MaxHeight: 2000})
	if !res.Truncated || res.Image.Bounds().Dy() > 2000+64 {
		t.Errorf("truncated=%v height=%d", res.Truncated, res.Image.Bounds().Dy())
	}
}

func TestRenderWidth58(t *testing.T) {
	res := Render([]byte("\x1b@"+strings.Repeat("0123456789", 5)+"\n"), Options{Width: 384})
	if res.Image.Bounds().Dx() != 384 {
		t.Fatalf("width %d", res.Image.Bounds().Dx())
	}
	// 50 characters of 12 dots wrap after 32 on 384 dots.
	if got := strings.Count(res.Text, "\n"); got != 2 {
		t.Errorf("text %q: %d lines, want 2", res.Text, got)
	}
}
