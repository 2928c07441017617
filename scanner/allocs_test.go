package scanner

import (
	"fmt"
	"strings"
	"testing"
)

// TestDecodeCodeFrameAllocs: a warmed decoder reading any generated frame class with
// a code (QR codes through the grid: grid.go, qrfast.go; Code 128 through c128fast.go)
// allocates nothing per frame, as on an empty frame (the steady state of a camera
// that sees the same code in frame after frame).
func TestDecodeCodeFrameAllocs(t *testing.T) {
	sizes := frameSizes
	if raceEnabled {
		sizes = sizes[:1]
	}
	for _, sz := range sizes {
		var log []string
		for _, f := range codeFrames(t, sz[0], sz[1]) {
			d := NewDecoder(DecodeOptions{})
			if r, err := d.Decode(f.g); err != nil || r.Text != f.want {
				t.Fatalf("%s: %v %v", f.name, r, err)
			}
			n := testing.AllocsPerRun(5, func() { d.Decode(f.g) })
			class := strings.TrimSuffix(f.name, fmt.Sprintf("-%dx%d", sz[0], sz[1]))
			if n != 0 {
				t.Errorf("%s: %v allocations per frame, want 0", f.name, n)
			}
			log = append(log, fmt.Sprintf("%s %v", class, n))
		}
		t.Logf("%dx%d allocations per frame: %s", sz[0], sz[1], strings.Join(log, ", "))
	}
}
