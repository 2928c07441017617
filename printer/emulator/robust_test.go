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

func TestRenderMultibyte(t *testing.T) {
	for _, tc := range []struct {
		enc  string
		data []byte
		want string
	}{
		{"euc-kr", []byte{0xc7, 0xd1, 0xb1, 0xb9}, "한국"},
		{"shift_jis", []byte{0x93, 0xfa, 0x96, 0x7b}, "日本"},
		{"gb18030", []byte{0xd6, 0xd0, 0xce, 0xc4, 0x81, 0x30, 0x81, 0x30}, "中文\u0080"},
		{"big5", []byte{0xa4, 0xa4, 0xa4, 0xe5}, "中文"},
	} {
		t.Run(tc.enc, func(t *testing.T) {
			data := append([]byte("A\x1c&"), tc.data...)
			data = append(data, "\x1c.B\n"...)
			res := Render(data, Options{Multibyte: tc.enc})
			if want := "A" + tc.want + "B\n"; res.Text != want {
				t.Errorf("text %q, want %q", res.Text, want)
			}
		})
	}
	// Outside FS & the same bytes are code table characters, not CJK.
	res := Render([]byte{0xc7, 0xd1, '\n'}, Options{Multibyte: "euc-kr"})
	if strings.ContainsRune(res.Text, '한') {
		t.Errorf("multibyte decoded outside FS &: %q", res.Text)
	}
}
