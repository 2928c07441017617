package main

import (
	"encoding/json"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/oned"
	"github.com/makiuchi-d/gozxing/qrcode"
)

// codeImage renders a code made by gozxing's writers, each module scale pixels.
func codeImage(t *testing.T, m *gozxing.BitMatrix, scale, barH int) *image.Gray {
	t.Helper()
	h := m.GetHeight() * scale
	if m.GetHeight() == 1 {
		h = barH
	}
	img := image.NewGray(image.Rect(0, 0, m.GetWidth()*scale+40, h+40))
	for i := range img.Pix {
		img.Pix[i] = 235
	}
	for y := 0; y < h; y++ {
		for x := 0; x < m.GetWidth()*scale; x++ {
			my := y / scale
			if m.GetHeight() == 1 {
				my = 0
			}
			if m.Get(x/scale, my) {
				img.Pix[(y+20)*img.Stride+x+20] = 25
			}
		}
	}
	return img
}

func TestDecodeImage(t *testing.T) {
	dir := t.TempDir()
	qr, err := qrcode.NewQRCodeWriter().Encode("286512345678901234", gozxing.BarcodeFormat_QR_CODE, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	c128, err := oned.NewCode128Writer().Encode("WLT-0042", gozxing.BarcodeFormat_CODE_128, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	save := func(name string, img image.Image) string {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if strings.HasSuffix(name, ".jpg") {
			err = jpeg.Encode(f, img, &jpeg.Options{Quality: 90})
		} else {
			err = png.Encode(f, img)
		}
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	qrFile := save("qr.png", codeImage(t, qr, 6, 0))
	barFile := save("bar.jpg", codeImage(t, c128, 3, 120))
	blank := image.NewGray(image.Rect(0, 0, 200, 100))
	blankFile := save("blank.png", blank)

	code, out, errOut := runPosctl(t, "", "decode-image", qrFile, barFile)
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errOut)
	}
	if !strings.Contains(out, "qr") || !strings.Contains(out, "code128") || strings.Contains(out, "286512345678901234") || !strings.Contains(out, " ms") {
		t.Errorf("output:\n%s", out)
	}

	code, out, _ = runPosctl(t, "", "decode-image", "-json", "-reveal", qrFile, blankFile)
	if code != 1 {
		t.Errorf("a file without a code: exit %d, want 1", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one line per file:\n%s", out)
	}
	var first, second map[string]any
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[1]), &second)
	if first["text"] != "286512345678901234" || first["format"] != "qr" || second["error"] == nil {
		t.Errorf("JSON lines:\n%s", out)
	}

	// A directory gives its image files.
	code, out, _ = runPosctl(t, "", "decode-image", dir)
	if code != 1 || strings.Count(out, "\n") != 3 {
		t.Errorf("directory: exit %d\n%s", code, out)
	}
	if code, _, _ := runPosctl(t, "", "decode-image"); code != 2 {
		t.Errorf("no files: exit %d, want 2", code)
	}
	if code, _, errOut := runPosctl(t, "", "decode-image", filepath.Join(dir, "missing.png")); code != 1 || errOut == "" {
		t.Errorf("missing file: exit %d %q", code, errOut)
	}
}
