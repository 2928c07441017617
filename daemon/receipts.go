package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/payment"
	"github.com/walletless/walletless/printer"
)

// receipts encodes finished sales and hands them to the printer queue, which keeps
// what cannot be printed and prints it when the printer recovers: a slow, stuck or
// paperless printer never blocks a sale.
type receipts struct {
	prn     printer.Printer // the printer the queue prints on (a firmware health check asks its status)
	q       *printer.Queue
	cfg     config.Config
	profile printer.Profile
	log     *slog.Logger
	sales   chan payment.Sale // finished sales waiting to be encoded
	none    bool              // printer.target "none": nothing to print, nothing to encode
	failed  func()            // counts a receipt that was not printed; set before run
}

func newReceipts(prn printer.Printer, profile printer.Profile, cfg config.Config, log *slog.Logger) *receipts {
	r := &receipts{prn: prn, cfg: cfg, profile: profile, log: log, sales: make(chan payment.Sale, 1024), none: cfg.Printer.Target == "none"}
	r.q = printer.NewQueue(prn, printer.QueueOptions{
		Log: log,
		Done: func(name string, err error) {
			if err != nil {
				log.Error("receipt dropped as unprintable (reprint it through the API)", "job", name, "err", err)
				r.fail()
				return
			}
			log.Info("receipt printed", "job", name)
		},
	})
	return r
}

// fail counts a receipt that was not printed.
func (r *receipts) fail() {
	if r.failed != nil {
		r.failed()
	}
}

// run encodes finished sales and runs the printer queue until ctx is done.
func (r *receipts) run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- r.q.Run(ctx) }()
	for {
		select {
		case <-ctx.Done():
			return <-errc
		case s := <-r.sales:
			r.submit(s)
		}
	}
}

// enqueue hands a finished sale to the receipt goroutine. The sale engine calls it:
// it never blocks, and encoding happens off the engine's goroutine.
func (r *receipts) enqueue(s payment.Sale) {
	if r.none {
		return
	}
	select {
	case r.sales <- s:
	default:
		r.log.Error("receipt backlog full; receipt not printed (reprint it through the API)", "id", s.ID)
		r.fail()
	}
}

func (r *receipts) submit(s payment.Sale) {
	name, data, err := r.encode(s)
	if err != nil {
		r.log.Error("encode receipt", "id", s.ID, "err", err)
		return
	}
	if err := r.q.Submit(name, data); err != nil {
		r.log.Error("queue receipt", "id", s.ID, "err", err)
	}
}

// reprint queues the receipt of a sale again (a customer's copy, or after paper ran
// out and the job was dropped).
func (r *receipts) reprint(s payment.Sale) error {
	if s.Status == payment.StatusWaitingForCode {
		return fmt.Errorf("daemon: sale %s has no receipt yet", s.ID)
	}
	r.enqueue(s)
	r.q.Retry()
	return nil
}

func (r *receipts) encode(s payment.Sale) (name string, data []byte, err error) {
	header := append([]string{r.cfg.Merchant.Name}, r.cfg.Merchant.Lines...)
	if s.QR != "" && s.Status == payment.StatusAuthorizing {
		// A merchant-presented sale: the slip the customer scans to pay.
		data, err = printer.EncodeMerchantQR(printer.MerchantQR{Header: header, SaleID: s.ID, Payload: s.QR,
			AmountMinor: s.AmountMinor, Currency: s.Currency, Language: r.cfg.Printer.Language}, r.profile)
		return s.ID + "-qr", data, err
	}
	data, err = printer.EncodeReceipt(printer.Receipt{
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
	return s.ID, data, err
}
