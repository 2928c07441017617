package api

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"

	"time"

	"github.com/walletless/walletless/payment"
)

// validKey reports whether an Idempotency-Key or ecr_ref is 1-128 printable ASCII
// characters.
func validKey(k string) bool {
	if len(k) == 0 || len(k) > 128 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// decodeEmpty accepts an empty body or an empty JSON object.
func decodeEmpty(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		return fmt.Errorf("request body too large or unreadable: %w", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return decodeStrict(w, r, &struct{}{})
}

// secretBody are the POSTs whose body or answer holds a secret (a payment code, a
// PIN, a new token): their Idempotency-Key is ignored, so no hash of the secret and
// no token is ever written to the key file. Each is safe to retry by itself: a code
// is refused the second time, a PIN is replaced by the same one, a second token of a
// name is refused (409).
var secretBody = map[string]bool{
	"POST /v1/sales/{id}/code": true,
	"POST /v1/pins":            true,
	"POST /v1/tokens":          true,
	// Not a secret but megabytes: a firmware upload is not kept either. It is safe to
	// send again: the same version installs once, and one in progress refuses another.
	"POST /v1/firmware": true,
}

// recorder keeps a copy of an answer while it is written.
type recorder struct {
	http.ResponseWriter
	code int
	buf  bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	r.buf.Write(b)
	return r.ResponseWriter.Write(b)
}

// idempotent wraps a POST: with an Idempotency-Key header, the first answer is kept
// (in Keys, for KeyTTL) and a retry with the same key, path and body gets it again
// with Idempotent-Replayed: true, without running the request twice. The same key
// with another body is refused (422). A 5xx, 429 or 503 answer is not kept, so the
// retry runs. Without the header the request just runs.
func (s *Server) idempotent(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if key == "" || s.Keys == nil {
			h(w, r)
			return
		}
		if !validKey(key) {
			writeError(w, http.StatusBadRequest, "Idempotency-Key is 1-128 printable ASCII characters (a UUID is a good choice)")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
		if err != nil {
			writeError(w, http.StatusBadRequest, "request body too large or unreadable")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		sum := sha256.Sum256(body)
		scope := r.URL.Path + "\x00" + key
		defer s.locks.lock("idem\x00" + scope)()
		var prev storedAnswer
		switch err := s.Keys.get(bucketIdem, scope, &prev); {
		case err == nil && !bytes.Equal(prev.BodyHash, sum[:]):
			writeError(w, http.StatusUnprocessableEntity, "this Idempotency-Key was already used with a different request body; use a new key for a new request")
			return
		case err == nil && prev.Pending:
			writeError(w, http.StatusConflict, "the first request with this Idempotency-Key did not finish (posd stopped while it ran); its outcome is unknown: check the sale, refund or batch before trying with a new key")
			return
		case err == nil:
			if prev.Location != "" {
				w.Header().Set("Location", prev.Location)
			}
			w.Header().Set("Idempotent-Replayed", "true")
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			w.WriteHeader(prev.Code)
			_, _ = w.Write(prev.Body)
			return
		case !errors.Is(err, errNoKey):
			s.writeEngineError(w, err)
			return
		}
		at := s.Keys.now().UTC()
		if err := s.Keys.put(bucketIdem, scope, storedAnswer{At: at, BodyHash: sum[:], Pending: true}); err != nil {
			s.writeEngineError(w, err)
			return
		}
		rec := &recorder{ResponseWriter: w}
		h(rec, r)
		if rec.code >= 500 || rec.code == http.StatusTooManyRequests {
			_ = s.Keys.del(bucketIdem, scope) // nothing happened: the retry may run
			return
		}
		ans := storedAnswer{At: at, BodyHash: sum[:], Code: rec.code, Location: rec.Header().Get("Location"), Body: rec.buf.Bytes()}
		if err := s.Keys.put(bucketIdem, scope, ans); err != nil {
			s.log.Error("api: the answer to an Idempotency-Key could not be kept; a retry will be told its outcome is unknown", "err", err)
		}
	}
}

// createWithRef creates a sale once per ecr_ref: 201 the first time, 200 with the
// same sale on a retry; the same ecr_ref with another amount, currency or flow is a
// conflict (409).
func (s *Server) createWithRef(w http.ResponseWriter, r *http.Request, req createRequest) {
	defer s.locks.lock("ecr\x00" + req.ECRRef)()
	var l ecrLink
	switch err := s.Keys.get(bucketECR, req.ECRRef, &l); {
	case err == nil && l.Pending:
		writeError(w, http.StatusConflict, "the first create with this ecr_ref did not finish (posd stopped while it ran); look for the sale in GET /v1/sales before starting a new one with a new ecr_ref")
		return
	case err == nil:
		sale, err := s.sales.Get(l.SaleID)
		if err != nil {
			s.writeEngineError(w, err)
			return
		}
		flow := req.Flow
		if flow == payment.FlowCustomerPresented {
			flow = ""
		}
		if sale.AmountMinor != *req.AmountMinor || sale.Currency != req.Currency || sale.Flow != flow {
			writeError(w, http.StatusConflict, fmt.Sprintf("ecr_ref %q already belongs to sale %s of another amount, currency or flow", req.ECRRef, sale.ID))
			return
		}
		w.Header().Set("Location", "/v1/sales/"+sale.ID)
		writeJSON(w, http.StatusOK, saleAnswer{Sale: sale, ECRRef: req.ECRRef})
		return
	case !errors.Is(err, errNoKey):
		s.writeEngineError(w, err)
		return
	}
	if err := s.Keys.put(bucketECR, req.ECRRef, ecrLink{At: s.Keys.now().UTC(), Pending: true}); err != nil {
		s.writeEngineError(w, err)
		return
	}
	sale, err := s.create(r, req)
	if err != nil {
		_ = s.Keys.del(bucketECR, req.ECRRef) // no sale was made: the reference is free
		s.writeEngineError(w, err)
		return
	}
	if err := s.Keys.link(req.ECRRef, sale.ID); err != nil {
		s.log.Error("api: the ecr_ref link could not be kept", "err", err)
	}
	s.PublishSale(sale)
	w.Header().Set("Location", "/v1/sales/"+sale.ID)
	writeJSON(w, http.StatusCreated, saleAnswer{Sale: sale, ECRRef: req.ECRRef})
}

// refOf returns the ecr_ref of a sale, or "".
func (s *Server) refOf(id string) string {
	if s.Keys == nil {
		return ""
	}
	return s.Keys.refFor(id)
}

// saleByECRRef is GET /v1/ecr/{ref}: the transaction status by the register's own
// reference.
func (s *Server) saleByECRRef(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("ref")
	sale, ok := s.saleOfRef(w, ref)
	if ok {
		writeJSON(w, http.StatusOK, saleAnswer{Sale: sale, ECRRef: ref})
	}
}

func (s *Server) saleOfRef(w http.ResponseWriter, ref string) (payment.Sale, bool) {
	var l ecrLink
	if s.Keys == nil || !validKey(ref) || s.Keys.get(bucketECR, ref, &l) != nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no sale with ecr_ref %q (references are kept %d days)", ref, int(KeyTTL.Hours()/24)))
		return payment.Sale{}, false
	}
	if l.Pending {
		writeError(w, http.StatusConflict, "the create with this ecr_ref did not finish (posd stopped while it ran); look for the sale in GET /v1/sales")
		return payment.Sale{}, false
	}
	sale, err := s.sales.Get(l.SaleID)
	if err != nil {
		s.writeEngineError(w, err)
		return payment.Sale{}, false
	}
	return sale, true
}

type abortRequest struct {
	SaleID string `json:"sale_id,omitempty"`
	ECRRef string `json:"ecr_ref,omitempty"`
}

// abort is POST /v1/abort (nexo Abort): stop a sale in progress, whichever client
// started it — the one named by sale_id or ecr_ref, or without either the sale
// waiting for a code. A sale that already went to the network cannot be aborted
// (409: wait for its outcome, then void it).
func (s *Server) abort(w http.ResponseWriter, r *http.Request) {
	var req abortRequest
	if err := decodeStrict(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id := req.SaleID
	switch {
	case req.SaleID != "" && req.ECRRef != "":
		writeError(w, http.StatusBadRequest, "give sale_id or ecr_ref, not both")
		return
	case req.ECRRef != "":
		sale, ok := s.saleOfRef(w, req.ECRRef)
		if !ok {
			return
		}
		id = sale.ID
	case id == "":
		var sale payment.Sale
		ok := false
		if s.Waiting != nil {
			sale, ok = s.Waiting(r.Context())
		}
		if !ok {
			writeError(w, http.StatusConflict, "no sale is waiting for a code; name the sale with sale_id or ecr_ref")
			return
		}
		id = sale.ID
	case !payment.ValidID(id):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no sale with id %q", id))
		return
	}
	sale, err := s.sales.Cancel(r.Context(), id)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	s.PublishSale(sale)
	by, _ := identity(r)
	s.log.Info("api: sale aborted", "sale", sale.ID, "by", by.Name)
	writeJSON(w, http.StatusOK, saleAnswer{Sale: sale, ECRRef: s.refOf(sale.ID)})
}

// lastSale returns the newest sale, or false with the answer written.
func (s *Server) lastSale(w http.ResponseWriter) (payment.Sale, bool) {
	if s.ListSales == nil {
		writeError(w, http.StatusNotImplemented, "this terminal cannot list its sales")
		return payment.Sale{}, false
	}
	sales, err := s.ListSales(time.Time{}, time.Now().Add(24*time.Hour))
	if err != nil {
		s.writeEngineError(w, err)
		return payment.Sale{}, false
	}
	if len(sales) == 0 {
		writeError(w, http.StatusNotFound, "there is no sale yet")
		return payment.Sale{}, false
	}
	return slices.MaxFunc(sales, func(a, b payment.Sale) int { return cmpUint(a.Order, b.Order) }), true
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// voidAnswer says what void did to the last sale.
type voidAnswer struct {
	// Action is "cancelled" (it had not been paid) or "refunded" (a full refund of
	// what was not refunded yet).
	Action string          `json:"action"`
	Sale   payment.Sale    `json:"sale"`
	Refund *payment.Refund `json:"refund,omitempty"`
}

// voidLast is POST /v1/sales/last/void (manager): undo the newest sale — cancel it
// while it waits, refund the rest of it once it is paid.
func (s *Server) voidLast(w http.ResponseWriter, r *http.Request) {
	if err := decodeEmpty(w, r); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	last, ok := s.lastSale(w)
	if !ok {
		return
	}
	switch {
	case last.Status == payment.StatusWaitingForCode || last.Flow == payment.FlowMerchantPresented && !last.Status.Final() && last.Status != payment.StatusStoredOffline:
		sale, err := s.sales.Cancel(r.Context(), last.ID)
		if err != nil {
			s.writeEngineError(w, err)
			return
		}
		s.PublishSale(sale)
		writeJSON(w, http.StatusOK, voidAnswer{Action: "cancelled", Sale: sale})
	case last.Status == payment.StatusApproved || last.Status == payment.StatusStoredOffline:
		rest := last.AmountMinor - last.RefundedMinor
		if rest <= 0 {
			writeError(w, http.StatusConflict, "the last sale is already refunded in full")
			return
		}
		ref, err := s.sales.Refund(r.Context(), last.ID, rest)
		if err != nil {
			s.writeEngineError(w, err)
			return
		}
		s.events.publish(EventRefund, ref)
		sale, err := s.sales.Get(last.ID)
		if err != nil {
			s.writeEngineError(w, err)
			return
		}
		s.PublishSale(sale)
		writeJSON(w, http.StatusOK, voidAnswer{Action: "refunded", Sale: sale, Refund: &ref})
	case last.Status == payment.StatusAuthorizing || last.Status == payment.StatusInDoubt || last.Status == payment.StatusReversalPending:
		writeError(w, http.StatusConflict, "the last sale is "+string(last.Status)+": wait for its outcome, then void it")
	default:
		writeError(w, http.StatusConflict, "the last sale is "+string(last.Status)+": no money moved, there is nothing to void")
	}
}

// printLast is POST /v1/receipts/last/print: the newest sale's receipt again.
func (s *Server) printLast(w http.ResponseWriter, r *http.Request) {
	if err := decodeEmpty(w, r); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.Reprint == nil {
		writeError(w, http.StatusNotImplemented, "this terminal has no printer queue")
		return
	}
	last, ok := s.lastSale(w)
	if !ok {
		return
	}
	if err := s.Reprint(last.ID); err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"id": last.ID, "status": "queued"})
}

// listSales is GET /v1/sales: the sales created on one day of the shop's calendar
// (?date=YYYY-MM-DD, default today), newest first.
func (s *Server) listSales(w http.ResponseWriter, r *http.Request) {
	if s.ListSales == nil {
		writeError(w, http.StatusNotImplemented, "this terminal cannot list its sales")
		return
	}
	loc := s.Location
	if loc == nil {
		loc = time.Local
	}
	now := time.Now().In(loc)
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	if d := r.URL.Query().Get("date"); d != "" {
		t, err := time.ParseInLocation("2006-01-02", d, loc)
		if err != nil {
			writeError(w, http.StatusBadRequest, "date is YYYY-MM-DD")
			return
		}
		day = t
	}
	sales, err := s.ListSales(day, day.AddDate(0, 0, 1))
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	slices.SortFunc(sales, func(a, b payment.Sale) int { return cmpUint(b.Order, a.Order) })
	if sales == nil {
		sales = []payment.Sale{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"date": day.Format("2006-01-02"), "sales": sales})
}

// demoCode is GET /v1/demo/code: a fresh sample customer code, in demo mode only.
func (s *Server) demoCode(w http.ResponseWriter, _ *http.Request) {
	if s.DemoCode == nil {
		writeError(w, http.StatusNotFound, "sample codes exist in demo mode only")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"code": s.DemoCode()})
}
