package scanner

import "testing"

// BenchmarkCodeFrames decodes every generated frame class with a code, at both camera
// sizes, with one warmed decoder (for profiles: go test -bench CodeFrames -cpuprofile).
func BenchmarkCodeFrames(b *testing.B) {
	var frames []benchFrame
	for _, sz := range frameSizes {
		frames = append(frames, codeFrames(b, sz[0], sz[1])...)
	}
	d := NewDecoder(DecodeOptions{})
	b.ReportAllocs()
	for b.Loop() {
		for _, f := range frames {
			if r, err := d.Decode(f.g); err != nil || r.Text != f.want {
				b.Fatalf("%s: %v %v", f.name, r, err)
			}
		}
	}
}
