package printertest

import (
	"bytes"
	"image"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	multiqr "github.com/makiuchi-d/gozxing/multi/qrcode"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// QR returns the texts of the QR codes gozxing finds in img, sorted.
func QR(img image.Image) []string {
	found := map[string]bool{}
	if bmp, err := gozxing.NewBinaryBitmapFromImage(img); err == nil {
		rs, _ := multiqr.NewQRCodeMultiReader().DecodeMultiple(bmp, nil)
		for _, r := range rs {
			found[r.GetText()] = true
		}
	}
	// The multi reader misses symbols close to other ink; scan bands as well.
	type sub interface {
		SubImage(image.Rectangle) image.Image
	}
	if s, ok := img.(sub); ok {
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y += 24 {
			for _, h := range []int{160, 240, 400} {
				part := s.SubImage(image.Rect(b.Min.X, y, b.Max.X, min(y+h, b.Max.Y)))
				bmp, err := gozxing.NewBinaryBitmapFromImage(part)
				if err != nil {
					continue
				}
				if r, err := qrcode.NewQRCodeReader().Decode(bmp, nil); err == nil {
					found[r.GetText()] = true
				}
			}
		}
	}
	out := make([]string, 0, len(found))
	for k := range found {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Zbar runs zbarimg on the PNG at path and returns its "TYPE:text" lines. Without
// zbarimg it skips the test, or fails it when CI=true.
func Zbar(t testing.TB, path string) []string {
	t.Helper()
	bin, err := exec.LookPath("zbarimg")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("zbarimg not found in CI: apt-get install zbar-tools")
		}
		t.Skip("zbarimg not installed: apt-get install zbar-tools")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "--quiet", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("zbarimg %s: %v\n%s", path, err, stderr.String())
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}
