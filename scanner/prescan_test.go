package scanner

import (
	"testing"
	"time"
)

// TestPrescanKeepsEveryCode checks that the pre-check passes every frame class with a
// code (whether or not a decoder reads it), so that it can never cost a read.
func TestPrescanKeepsEveryCode(t *testing.T) {
	var p prescanner
	for _, sz := range frameSizes {
		for _, f := range codeFrames(t, sz[0], sz[1]) {
			if !p.codeLike(f.g, false) {
				t.Errorf("%s: pre-check finds nothing code-like", f.name)
			}
		}
	}
}

func TestPrescanEmptyRate(t *testing.T) {
	var p prescanner
	for _, sz := range frameSizes {
		fs := emptyFrames(sz[0], sz[1], 200, 1000)
		hits := map[string]int{}
		var took time.Duration
		for _, f := range fs {
			t0 := time.Now()
			if p.codeLike(f.g, false) {
				hits[f.name[:9]+"/"+p.found]++
			}
			took += time.Since(t0)
		}
		t.Logf("%dx%d: code-like %v of %d, %v per frame", sz[0], sz[1], hits, len(fs), took/time.Duration(len(fs)))
	}
}

func BenchmarkPrescan(b *testing.B) {
	for _, sz := range frameSizes {
		for _, f := range emptyFrames(sz[0], sz[1], 2, 1) {
			b.Run(f.name, func(b *testing.B) {
				var p prescanner
				b.ReportAllocs()
				for b.Loop() {
					p.codeLike(f.g, false)
				}
			})
		}
	}
}
