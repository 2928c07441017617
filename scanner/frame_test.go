package scanner

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func frames(mode Framing, max int, chunks ...string) (out []string, oversize int) {
	f := NewFramer(mode, max)
	f.Oversize = func(int) { oversize++ }
	for _, c := range chunks {
		f.Feed([]byte(c), func(b []byte) { out = append(out, string(b)) })
	}
	return out, oversize
}

func TestFramer(t *testing.T) {
	tests := []struct {
		name     string
		mode     Framing
		max      int
		chunks   []string
		want     []string
		oversize int
	}{
		{"cr", FramingAuto, 0, []string{"123\r456\r"}, []string{"123", "456"}, 0},
		{"lf", FramingAuto, 0, []string{"123\n456\n"}, []string{"123", "456"}, 0},
		{"crlf", FramingAuto, 0, []string{"123\r\n456\r\n"}, []string{"123", "456"}, 0},
		{"crlf split", FramingAuto, 0, []string{"12", "3\r", "\n4", "56\r", "\n"}, []string{"123", "456"}, 0},
		{"blank lines", FramingAuto, 0, []string{"\r\n\r\n\n\r123\r\r\n"}, []string{"123"}, 0},
		{"unterminated", FramingAuto, 0, []string{"123"}, nil, 0},
		{"byte by byte", FramingAuto, 0, strings.Split("]Q1abc\r\n", ""), []string{"]Q1abc"}, 0},
		{"oversize dropped", FramingAuto, 4, []string{"12345\r1234\r"}, []string{"1234"}, 1},
		{"oversize split", FramingAuto, 4, []string{"123", "45678", "9\r\nok\r"}, []string{"ok"}, 1},
		{"two oversize", FramingAuto, 2, []string{"abc\rdef\rgh\r"}, []string{"gh"}, 2},
		{"cr mode keeps lf", FramingCR, 0, []string{"a\nb\r"}, []string{"a\nb"}, 0},
		{"lf mode trims cr", FramingLF, 0, []string{"a\rb\r\nc\n"}, []string{"a\rb", "c"}, 0},
		{"crlf mode", FramingCRLF, 0, []string{"a\rb\nc\r", "\nd\r\n"}, []string{"a\rb\nc", "d"}, 0},
		{"gap mode still ends at cr", FramingGap, 0, []string{"a\rb"}, []string{"a"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, over := frames(tt.mode, tt.max, tt.chunks...)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("frames = %q, want %q", got, tt.want)
			}
			if over != tt.oversize {
				t.Errorf("oversize = %d, want %d", over, tt.oversize)
			}
		})
	}
}

func TestFramerFlushAndBound(t *testing.T) {
	f := NewFramer(FramingGap, 8)
	var got []string
	emit := func(b []byte) { got = append(got, string(b)) }
	f.Feed([]byte("abc"), emit)
	if f.Pending() != 3 {
		t.Fatalf("Pending = %d", f.Pending())
	}
	f.Flush(emit)
	f.Feed(bytes.Repeat([]byte("x"), 10000), emit)
	if f.Pending() > 8 || cap(f.buf) > 4096 {
		t.Fatalf("framer holds %d bytes (cap %d) with max 8", f.Pending(), cap(f.buf))
	}
	f.Flush(emit) // ends the oversize frame silently
	f.Feed([]byte("ok\r"), emit)
	if strings.Join(got, "|") != "abc|ok" {
		t.Fatalf("got %q", got)
	}
}

func TestParseFrame(t *testing.T) {
	tests := []struct {
		in      string
		aim     AIMMode
		text    string
		sym     string
		wantErr error
	}{
		{"286512345678901234", AIMAuto, "286512345678901234", "", nil},
		{"]Q1hQR", AIMAuto, "hQR", "qr", nil},
		{"]C0ABC-123", AIMAuto, "ABC-123", "code128", nil},
		{"]C1\x1d0104912345678904", AIMAuto, "0104912345678904", "gs1-128", nil},
		{"]E04901234567894", AIMAuto, "4901234567894", "ean13", nil},
		{"]E449123456", AIMAuto, "49123456", "ean8", nil},
		{"]d2data", AIMAuto, "data", "datamatrix", nil},
		{"]Q1abc", AIMOff, "]Q1abc", "", nil},
		{"]W1abc", AIMAuto, "]W1abc", "", nil}, // unknown identifier: kept as data
		{"]Q", AIMAuto, "]Q", "", nil},
		{"  \x00123\t ", AIMAuto, "123", "", nil},
		{"01\x1d21ABC", AIMAuto, "01\x1d21ABC", "", nil},
		{"\x00\x00", AIMAuto, "", "", nil},
		{"12\x0734", AIMAuto, "", "", ErrControl},
		{"12\x7f34", AIMAuto, "", "", ErrControl},
		{"12\xff\xfe34", AIMAuto, "", "", ErrNotUTF8},
		{"支付宝", AIMAuto, "支付宝", "", nil},
	}
	for _, tt := range tests {
		s, err := parseFrame([]byte(tt.in), tt.aim)
		if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
			t.Errorf("parseFrame(%q) error = %v, want %v", tt.in, err, tt.wantErr)
			continue
		}
		if s.Text != tt.text || s.Symbology != tt.sym {
			t.Errorf("parseFrame(%q) = %q/%q, want %q/%q", tt.in, s.Text, s.Symbology, tt.text, tt.sym)
		}
	}
}

func TestDedup(t *testing.T) {
	d := dedup{window: 2 * 1e9}
	base := testTime
	steps := []struct {
		code string
		at   int // seconds after base
		dup  bool
	}{
		{"A", 0, false}, {"A", 1, true}, {"A", 2, true}, {"A", 5, false},
		{"B", 5, false}, {"A", 5, false}, {"A", 6, true},
	}
	for i, s := range steps {
		if got := d.seen(s.code, base.Add(timeSeconds(s.at))); got != s.dup {
			t.Errorf("step %d (%s at %ds): dup = %v, want %v", i, s.code, s.at, got, s.dup)
		}
	}
	off := dedup{}
	if off.seen("A", base) || off.seen("A", base) {
		t.Error("dedup with window 0 suppressed a read")
	}
}

// FuzzFrame checks the framer against a simple model: feeding the input in any split
// gives the same frames as splitting it on CR/LF, frames never exceed the maximum or
// hold a terminator, and parseFrame accepts only valid UTF-8 without control bytes.
func FuzzFrame(f *testing.F) {
	seeds := []string{
		"", "\r", "\n", "\r\n", "123\r\n456\r", "]Q1abc\r", "]C0\r\n", "\xff\xfe\r",
		"a\x00b\rc\x1dd\n", strings.Repeat("9", 40) + "\r1\r", "\r\r\n\n\r", "]E4\x1d\r",
	}
	for i, s := range seeds {
		f.Add([]byte(s), uint8(i*7+1), uint8(16))
		f.Add([]byte(s+"tail"), uint8(i), uint8(2))
	}
	f.Fuzz(func(t *testing.T, data []byte, split, max uint8) {
		m := int(max%64) + 1
		// model
		var want []string
		var wantOver int
		for _, seg := range bytes.FieldsFunc(data, func(r rune) bool { return r == '\r' || r == '\n' }) {
			if len(seg) > m {
				wantOver++
				continue
			}
			want = append(want, string(seg))
		}
		// FieldsFunc works on runes; invalid UTF-8 never hides a CR or LF, so the
		// split matches a byte split.
		var got []string
		over := 0
		fr := NewFramer(FramingAuto, m)
		fr.Oversize = func(int) { over++ }
		step := int(split%17) + 1
		for i := 0; i < len(data); i += step {
			fr.Feed(data[i:min(i+step, len(data))], func(b []byte) {
				if len(b) > m || bytes.ContainsAny(b, "\r\n") {
					t.Fatalf("bad frame %q (max %d)", b, m)
				}
				got = append(got, string(b))
			})
			if fr.Pending() > m {
				t.Fatalf("framer holds %d bytes, max %d", fr.Pending(), m)
			}
		}
		// A trailing unterminated frame is pending, not emitted; an oversize one has
		// already been reported.
		if n := len(data); n > 0 && data[n-1] != '\r' && data[n-1] != '\n' && !endsWithOversize(data, m) {
			want = want[:len(want)-1]
		}
		if strings.Join(got, "\x00|") != strings.Join(want, "\x00|") || len(got) != len(want) {
			t.Fatalf("frames %q, model %q", got, want)
		}
		if over != wantOver {
			t.Fatalf("oversize %d, model %d", over, wantOver)
		}
		for _, g := range got {
			s, err := parseFrame([]byte(g), AIMAuto)
			if err != nil {
				continue
			}
			if !utf8.ValidString(s.Text) {
				t.Fatalf("accepted invalid UTF-8 %q", s.Text)
			}
			for _, b := range []byte(s.Text) {
				if (b < ' ' && b != 0x1d) || b == 0x7f {
					t.Fatalf("accepted control byte in %q", s.Text)
				}
			}
		}
	})
}

// endsWithOversize reports whether the unterminated tail of data is longer than m.
func endsWithOversize(data []byte, m int) bool {
	i := bytes.LastIndexAny(data, "\r\n")
	return len(data)-(i+1) > m
}
