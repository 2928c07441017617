//go:build hardware

package printer

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestHardwarePrint prints a receipt on a real printer:
//
//	WALLETLESS_TEST_PRINTER=/dev/usb/lp0 WALLETLESS_TEST_PROFILE=epson-80 go test -tags hardware -run Hardware ./printer/
func TestHardwarePrint(t *testing.T) {
	spec := os.Getenv("WALLETLESS_TEST_PRINTER")
	if spec == "" {
		t.Skip("set WALLETLESS_TEST_PRINTER to a printer spec")
	}
	prof := DefaultProfile()
	if n := os.Getenv("WALLETLESS_TEST_PROFILE"); n != "" {
		var ok bool
		if prof, ok = LookupProfile(n); !ok {
			t.Fatalf("unknown profile %q", n)
		}
	}
	p, err := OpenWith(spec, Options{Profile: prof})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if sr, ok := p.(StatusReader); ok {
		st, err := sr.Status(ctx)
		t.Logf("status: %v, %v", st, err)
	}
	r := sampleReceipt()
	r.Time = time.Now()
	if l := os.Getenv("WALLETLESS_TEST_LANG"); l != "" {
		r.Language = l
	}
	data, err := EncodeReceipt(r, prof)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Print(ctx, r.SaleID, data); err != nil {
		t.Fatal(err)
	}
}
