package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/payment"
	"github.com/walletless/walletless/printer"
)

// receiptQueue prints receipts off the engine's goroutine: a slow or stuck printer
// never blocks a sale.
type receiptQueue struct {
	prn     printer.Printer
	cfg     config.Config
	profile printer.Profile
	log     *slog.Logger
	q       chan payment.Sale
}

func newReceiptQueue(prn printer.Printer, profile printer.Profile, cfg config.Config, log *slog.Logger) *receiptQueue {
	return &receiptQueue{prn: prn, cfg: cfg, profile: profile, log: log, q: make(chan payment.Sale, 64)}
}

// enqueue hands a finished sale to the printer; it never blocks.
func (r *receiptQueue) enqueue(s payment.Sale) {
	select {
	case r.q <- s:
	default:
		r.log.Error("receipt queue full; receipt not printed (reprint from the sale id)", "id", s.ID)
	}
}

func (r *receiptQueue) run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-r.q:
			r.print(ctx, s)
		}
	}
}

func (r *receiptQueue) print(ctx context.Context, s payment.Sale) {
	header := append([]string{r.cfg.Merchant.Name}, r.cfg.Merchant.Lines...)
	if s.QR != "" && s.Status == payment.StatusAuthorizing {
		// A merchant-presented sale: print the slip the customer scans to pay.
		data, err := printer.EncodeMerchantQR(printer.MerchantQR{Header: header, SaleID: s.ID, Payload: s.QR,
			AmountMinor: s.AmountMinor, Currency: s.Currency, Language: r.cfg.Printer.Language}, r.profile)
		if err != nil {
			r.log.Error("encode merchant QR slip", "id", s.ID, "err", err)
			return
		}
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := r.prn.Print(pctx, s.ID+"-qr", data); err != nil {
			r.log.Error("print merchant QR slip", "id", s.ID, "err", err)
			return
		}
		r.log.Info("merchant QR slip printed", "id", s.ID)
		return
	}
	data, err := printer.EncodeReceipt(printer.Receipt{
		Header:      header,
		SaleID:      s.ID,
		Time:        s.UpdatedAt.In(time.Local),
		AmountMinor: s.AmountMinor,
		Currency:    s.Currency,
		Scheme:      s.Scheme,
		Operator:    s.Operator,
		MaskedCode:  s.MaskedCode,
		Status:      string(s.Status),
		Reason:      s.Reason,
		Language:    r.cfg.Printer.Language,
	}, r.profile)
	if err != nil {
		r.log.Error("encode receipt", "id", s.ID, "err", err)
		return
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := r.prn.Print(pctx, s.ID, data); err != nil {
		r.log.Error("print receipt", "id", s.ID, "err", err)
		return
	}
	r.log.Info("receipt printed", "id", s.ID, "status", s.Status)
}
