package scanner

import "testing"

// BenchmarkCodeFrames decodes every generated frame class with a code, at both camera
// sizes, with one warmed decoder ("all"), and each frame alone, for profiles:
//
//	go test ./scanner -run '^$' -bench 'CodeFrames/all' -cpuprofile cpu.out
//	go test ./scanner -run '^$' -bench 'CodeFrames/wallet-rot30-1280x720' -benchmem
func BenchmarkCodeFrames(b *testing.B) {
	var frames []benchFrame
	for _, sz := range frameSizes {
		frames = append(frames, codeFrames(b, sz[0], sz[1])...)
	}
	b.Run("all", func(b *testing.B) {
		d := NewDecoder(DecodeOptions{})
		b.ReportAllocs()
		for b.Loop() {
			for _, f := range frames {
				if r, err := d.Decode(f.g); err != nil || r.Text != f.want {
					b.Fatalf("%s: %v %v", f.name, r, err)
				}
			}
		}
	})
	for _, f := range frames {
		b.Run(f.name, func(b *testing.B) {
			d := NewDecoder(DecodeOptions{})
			b.ReportAllocs()
			for b.Loop() {
				if r, err := d.Decode(f.g); err != nil || r.Text != f.want {
					b.Fatalf("%s: %v %v", f.name, r, err)
				}
			}
		})
	}
}
