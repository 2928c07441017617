package emulator

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/walletless/walletless/printer/printertest"
)

// TestThirdPartyEncoder renders streams written by the npm package esc-pos-encoder
// (testdata/thirdparty/generate.mjs): column (ESC *) and raster (GS v 0) images,
// CR LF line ends, code page switches, tables, QR and Code 128.
func TestThirdPartyEncoder(t *testing.T) {
	for _, mode := range []string{"column", "raster"} {
		t.Run(mode, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "thirdparty", "esc-pos-encoder-"+mode+".bin"))
			if err != nil {
				t.Fatal(err)
			}
			res := Render(data, Options{})
			if len(res.Warnings) != 0 {
				t.Errorf("warnings: %v", res.Warnings)
			}
			for _, want := range []string{"THIRD PARTY", "esc-pos-encoder " + mode, "Plain bold underlined", "inverted", "Font B line", "Euro: €  Pound: £", "─────", "Coffee", "7.70", "[QR https://walletless.example/r/TP-0001]", "[code128 TP0001]"} {
				if !strings.Contains(res.Text, want) {
					t.Errorf("text lacks %q:\n%s", want, res.Text)
				}
			}
			if res.Cuts != 1 || res.DrawerKicks != 1 {
				t.Errorf("cuts %d kicks %d", res.Cuts, res.DrawerKicks)
			}
			if got := printertest.QR(res.Image); !slices.Equal(got, []string{"https://walletless.example/r/TP-0001"}) {
				t.Errorf("QR decoded %q", got)
			}
			golden(t, "thirdparty-"+mode+".png", res.Image)
		})
	}
}
