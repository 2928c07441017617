package scanner

import (
	"fmt"
	"testing"
)

// BenchmarkDecodeQR measures our decode time per frame at 640x480 and 1280x720 for
// QR and Code 128 codes and for frames with no code (the cost of a miss; false reads
// are reported), with allocations. BenchmarkPeers compares with zxing-cpp and zbar
// in-process. Run it with make bench.
func BenchmarkDecodeQR(b *testing.B) {
	for _, size := range [][2]int{{640, 480}, {1280, 720}} {
		w, h := size[0], size[1]
		cases := []struct {
			name string
			g    Gray
			want string
		}{
			{"qr", synth{w: w, h: h, code: qrModules(b, testQR), module: 5, noise: 10, seed: 1}.render(), testQR},
			{"qr-rotated", synth{w: w, h: h, code: qrModules(b, testQR), module: 5, angle: 30, noise: 10, seed: 2}.render(), testQR},
			{"code128", synth{w: w, h: h, code: code128Modules(b, test128), module: 3, barH: h / 3, noise: 10, seed: 3}.render(), test128},
			{"nocode", noiseFrame(w, h, 4), ""},
			{"nocode-cheap", noiseFrame(w, h, 4), ""},
		}
		for _, c := range cases {
			b.Run(fmt.Sprintf("%s/%dx%d/gozxing", c.name, w, h), func(b *testing.B) {
				d := NewDecoder(DecodeOptions{})
				falseReads := 0
				b.ReportAllocs()
				for b.Loop() {
					decode := d.Decode
					if c.name == "nocode-cheap" {
						decode = d.DecodeCheap
					}
					r, err := decode(c.g)
					switch {
					case c.want == "" && err == nil:
						falseReads++
					case c.want != "" && (err != nil || r.Text != c.want):
						b.Fatalf("decode failed: %v %v", r, err)
					}
				}
				if c.want == "" && falseReads > 0 {
					b.ReportMetric(float64(falseReads)/float64(b.N), "false-reads/op")
				}
			})
		}
	}
}

// BenchmarkFrame measures the serial framing cost per scan.
func BenchmarkFrame(b *testing.B) {
	line := []byte("]Q1286512345678901234\r\n")
	f := NewFramer(FramingAuto, DefaultMaxLine)
	n := 0
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		f.Feed(line, func(fr []byte) {
			if s, err := parseFrame(fr, AIMAuto); err == nil && s.Text != "" {
				n++
			}
		})
	}
	if n == 0 {
		b.Fatal("no frames")
	}
}
