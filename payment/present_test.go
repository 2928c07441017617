package payment

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/walletless/walletless/paycode"
)

var jpqr = &paycode.MPM{
	MerchantAccounts: []paycode.MerchantAccount{{ID: "26", GUI: "jp.or.paymentsjapan",
		Fields: []paycode.Field{{ID: "01", Value: "0000000000001"}, {ID: "02", Value: "0001"}, {ID: "03", Value: "000001"}, {ID: "04", Value: "000001"}}}},
	MCC: "5812", Country: "JP", MerchantName: "CAFE", MerchantCity: "TOKYO",
	Additional: []paycode.Field{{ID: paycode.AddTerminalLabel, Value: "POS01"}, {ID: paycode.AddReferenceLabel, Value: "stale"}},
}

var presented = make(chan Sale, 100)

func withMerchantCode(c *Config) {
	c.MerchantCode, c.PresentTimeout = jpqr, time.Second
	c.Presented = func(s Sale) { presented <- s }
}

func TestMerchantPresented(t *testing.T) {
	ctx := context.Background()
	t.Run("not configured", func(t *testing.T) {
		h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute)
		defer h.stop()
		if _, err := h.e.Present(ctx, 498, "JPY"); !errors.Is(err, ErrNoMerchantCode) {
			t.Fatalf("Present without template: %v", err)
		}
	})
	t.Run("paid", func(t *testing.T) {
		h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute, withMerchantCode)
		defer h.stop()
		for _, bad := range []struct {
			a int64
			c string
		}{{0, "JPY"}, {5, "XYZ"}} {
			if _, err := h.e.Present(ctx, bad.a, bad.c); err == nil {
				t.Fatalf("Present(%d, %s) accepted", bad.a, bad.c)
			}
		}
		s, err := h.e.Present(ctx, 498, "JPY")
		if err != nil || s.Status != StatusAuthorizing || s.Flow != FlowMerchantPresented || s.Scheme != "jpqr" || s.QR == "" {
			t.Fatalf("Present = %+v, %v", s, err)
		}
		m, _, err := paycode.Decode(s.QR)
		if err != nil || !m.Dynamic() {
			t.Fatalf("QR does not decode as a dynamic code: %v", err)
		}
		if minor, ok := m.AmountMinor(); !ok || minor != 498 {
			t.Fatalf("QR amount %d %v", minor, ok)
		}
		if ref, _ := m.AdditionalField(paycode.AddReferenceLabel); ref != referenceLabel(s.ID) || len(ref) != 25 {
			t.Fatalf("QR reference %q", ref)
		}
		if k := h.outboxKinds(s.ID); !eq(k, []string{KindPayment}) {
			t.Fatalf("outbox %v", k)
		}
		// presented is shared by the subtests (and by -count runs): skip others' sales.
		for p := range presented {
			if p.ID == s.ID {
				if p.QR != s.QR {
					t.Fatalf("Presented got %+v", p)
				}
				break
			}
		}
		// The scanner stays free for customer-presented sales meanwhile.
		if w, err := h.e.Create(ctx, 100, "JPY"); err != nil {
			t.Fatal(err)
		} else {
			h.e.Cancel(ctx, w.ID)
		}
		h.result(s.ID, "", ResultApproved, "")
		if got := h.mustGet(s.ID); got.Status != StatusApproved || got.QR != "" || !got.Synced {
			t.Fatalf("paid: %+v", got)
		}
	})
	t.Run("cancelled by the clerk", func(t *testing.T) {
		h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute, withMerchantCode)
		defer h.stop()
		s, _ := h.e.Present(ctx, 498, "JPY")
		c, err := h.e.Cancel(ctx, s.ID)
		if err != nil || c.Status != StatusReversalPending {
			t.Fatalf("Cancel = %+v %v", c, err)
		}
		if k := h.outboxKinds(s.ID); !eq(k, []string{KindReversal}) {
			t.Fatalf("outbox %v", k)
		}
		h.result(s.ID, "", ResultApproved, "") // paid just before the cancel: the reversal wins
		h.result(s.ID, KindReversal, ResultReversed, "")
		if got := h.mustGet(s.ID); got.Status != StatusReversed {
			t.Fatalf("after reversal: %+v", got)
		}
	})
	t.Run("no answer goes in doubt", func(t *testing.T) {
		h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute, withMerchantCode)
		defer h.stop()
		s, _ := h.e.Present(ctx, 498, "JPY")
		h.clock.Add(2 * time.Second)
		h.waitStatus(s.ID, StatusInDoubt)
	})
	t.Run("offline is refused", func(t *testing.T) {
		h := newHarness(t, filepath.Join(t.TempDir(), "db"), time.Minute, withMerchantCode)
		defer h.stop()
		h.setOnline(false)
		s, err := h.e.Present(ctx, 498, "JPY")
		if err != nil || s.Status != StatusRefused || s.QR != "" {
			t.Fatalf("offline Present = %+v %v", s, err)
		}
		if k := h.outboxKinds(s.ID); !eq(k, []string{KindAttempt}) {
			t.Fatalf("outbox %v", k)
		}
	})
}
