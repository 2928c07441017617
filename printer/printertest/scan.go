package printertest

import (
	"bytes"
	"image"
	"image/draw"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	multiqr "github.com/makiuchi-d/gozxing/multi/qrcode"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// QR returns the texts of the QR codes gozxing finds in img, sorted. Receipts hold
// one symbol per band of paper, so each tall block of ink (separated from the rest by
// blank rows) is decoded on its own, on a white margin.
func QR(img image.Image) []string {
	found := map[string]bool{}
	for _, block := range inkBlocks(img, 40) {
		bmp, err := gozxing.NewBinaryBitmapFromImage(block)
		if err != nil {
			continue
		}
		if r, err := qrcode.NewQRCodeReader().Decode(bmp, nil); err == nil {
			found[r.GetText()] = true
		}
	}
	if len(found) == 0 {
		if bmp, err := gozxing.NewBinaryBitmapFromImage(img); err == nil {
			rs, _ := multiqr.NewQRCodeMultiReader().DecodeMultiple(bmp, nil)
			for _, r := range rs {
				found[r.GetText()] = true
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

// inkBlocks cuts img into runs of rows with ink, separated by at least 4 blank rows,
// and returns those at least minH rows tall, each copied onto white paper with a
// 24-dot margin.
func inkBlocks(img image.Image, minH int) []image.Image {
	b := img.Bounds()
	gray := image.NewGray(b)
	draw.Draw(gray, b, img, b.Min, draw.Src)
	ink := make([]bool, b.Dy())
	for y := range b.Dy() {
		row := gray.Pix[y*gray.Stride : y*gray.Stride+b.Dx()]
		for _, v := range row {
			if v < 0x80 {
				ink[y] = true
				break
			}
		}
	}
	var out []image.Image
	const margin = 24
	emit := func(y0, y1 int) {
		if y1-y0 < minH {
			return
		}
		dst := image.NewGray(image.Rect(0, 0, b.Dx()+2*margin, y1-y0+2*margin))
		for i := range dst.Pix {
			dst.Pix[i] = 0xff
		}
		draw.Draw(dst, image.Rect(margin, margin, margin+b.Dx(), margin+y1-y0), gray, image.Pt(b.Min.X, b.Min.Y+y0), draw.Src)
		out = append(out, dst)
	}
	start, blank := -1, 0
	for y, has := range ink {
		switch {
		case has && start < 0:
			start, blank = y, 0
		case has:
			blank = 0
		case start >= 0:
			blank++
			if blank >= 4 {
				emit(start, y-blank+1)
				start = -1
			}
		}
	}
	if start >= 0 {
		emit(start, len(ink))
	}
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
