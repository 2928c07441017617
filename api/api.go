package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/walletless/walletless/auth"
	"github.com/walletless/walletless/payment"
)

// MaxBody bounds a request body.
const MaxBody = 64 << 10

// Sales is what the API needs from the sale engine; *payment.Engine satisfies it.
type Sales interface {
	Create(ctx context.Context, amountMinor int64, currency string) (payment.Sale, error)
	Present(ctx context.Context, amountMinor int64, currency string) (payment.Sale, error)
	Get(id string) (payment.Sale, error)
	Cancel(ctx context.Context, id string) (payment.Sale, error)
	ScanFor(ctx context.Context, id, code string) (payment.Sale, bool, error)
	Refund(ctx context.Context, saleID string, amountMinor int64) (payment.Refund, error)
	GetRefund(id string) (payment.Refund, error)
	CurrentBatch(ctx context.Context) (payment.Batch, error)
	CloseBatch(ctx context.Context) (payment.Batch, error)
	GetBatch(id string) (payment.Batch, error)
}

// Server is the HTTP API.
type Server struct {
	// Merchant heads the Z report; set it before serving.
	Merchant string
	// Reprint queues a sale's receipt again; nil answers 501.
	Reprint func(id string) error
	// Tokens authenticates every request; nil refuses every request (401).
	Tokens Tokens
	// Config shows the configuration history and rolls it back (config.go); nil answers 501.
	Config ConfigHistory
	// Firmware installs signed firmware (firmware.go); nil answers 501.
	Firmware FirmwareUpdates
	// Metrics serves Prometheus metrics at GET /metrics to manager tokens; nil answers 404.
	Metrics http.Handler
	// Sessions are the page's signed-in browsers; nil disables sign-in (501).
	Sessions *auth.Sessions
	// PINs are the clerks' PINs for sign-in; nil allows only tokens.
	PINs PINStore
	// Page serves the clerk's page (every GET outside /v1/); nil answers 404 there.
	Page http.Handler
	// Keys keeps Idempotency-Key answers and ecr_ref → sale links durably; nil
	// ignores both (every POST runs).
	Keys *Keys
	// Waiting returns the sale waiting for a code (abort without an id, the event
	// stream's first events); nil: none.
	Waiting func(ctx context.Context) (payment.Sale, bool)
	// ListSales returns the sales created in [from, to), oldest first; nil answers
	// 501 for the sales list, void-last and print-last.
	ListSales func(from, to time.Time) ([]payment.Sale, error)
	// DemoCode returns a fresh sample customer code (demo mode only); nil answers 404.
	DemoCode func() string
	// Location is the shop's time zone, for "today"; nil means time.Local.
	Location *time.Location
	// Hosts are the host names besides localhost, loopback addresses and the address
	// a connection came in on that a Host header may name (the configured address,
	// the device's host name).
	Hosts []string

	sales    Sales
	status   func() any
	log      *slog.Logger
	mux      *http.ServeMux
	limit    *limiter
	draining atomic.Bool // set when Serve's context ends, before Shutdown
	events   *hub
	locks    keyLocks
}

// New returns the API; status returns the JSON-encodable terminal status.
func New(sales Sales, status func() any, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{sales: sales, status: status, log: log, mux: http.NewServeMux(), limit: newLimiter(), events: newHub()}
	for _, rt := range s.allRoutes() {
		h := rt.h
		if strings.HasPrefix(rt.pattern, "POST ") && !secretBody[rt.pattern] {
			h = s.idempotent(h)
		}
		s.mux.HandleFunc(rt.pattern, needs(rt.role, h))
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return s
}

// allRoutes is every endpoint the mux serves: the counter's and the access routes,
// the fleet configuration's, the firmware's and /metrics. New routes them all and
// TestEveryRouteIsDocumented checks them all against docs/api.yaml.
func (s *Server) allRoutes() []route {
	all := slices.Concat(s.routes(), s.configRoutes(), s.firmwareRoutes())
	return append(all, s.metricsRoute())
}

type route struct {
	pattern string
	role    auth.Role
	h       http.HandlerFunc
}

// routes lists every endpoint with the role it needs: a clerk runs the counter, a
// manager also moves money back (refunds), closes the day and manages tokens.
func (s *Server) routes() []route {
	return []route{
		{"POST /v1/sales", auth.RoleClerk, s.createSale},
		{"GET /v1/sales/{id}", auth.RoleClerk, s.getSale},
		{"POST /v1/sales/{id}/cancel", auth.RoleClerk, s.cancelSale},
		{"POST /v1/sales/{id}/code", auth.RoleClerk, s.scanCode},
		{"POST /v1/sales/{id}/refunds", auth.RoleManager, s.createRefund},
		{"POST /v1/sales/{id}/reprint", auth.RoleClerk, s.reprint},
		{"GET /v1/refunds/{id}", auth.RoleClerk, s.getRefund},
		{"GET /v1/batches/current", auth.RoleClerk, s.currentBatch},
		{"POST /v1/batches/close", auth.RoleManager, s.closeBatch},
		{"GET /v1/batches/{id}", auth.RoleClerk, s.getBatch},
		{"GET /v1/batches/{id}/report", auth.RoleClerk, s.batchReport},
		{"GET /v1/status", auth.RoleClerk, s.getStatus},
		{"GET /v1/tokens", auth.RoleManager, s.listTokens},
		{"POST /v1/tokens", auth.RoleManager, s.createToken},
		{"DELETE /v1/tokens/{name}", auth.RoleManager, s.revokeToken},
		{"GET /v1/session", auth.RoleClerk, s.whoAmI},
		{"DELETE /v1/session", auth.RoleClerk, s.signOut},
		{"GET /v1/pins", auth.RoleManager, s.listPINs},
		{"POST /v1/pins", auth.RoleManager, s.setPIN},
		{"DELETE /v1/pins/{name}", auth.RoleManager, s.removePIN},
		{"GET /v1/events", auth.RoleClerk, s.streamEvents},
		{"GET /v1/sales/{id}/qr.png", auth.RoleClerk, s.saleQR},
		{"GET /v1/demo/code", auth.RoleClerk, s.demoCode},
		{"GET /v1/sales", auth.RoleClerk, s.listSales},
		{"GET /v1/ecr/{ref}", auth.RoleClerk, s.saleByECRRef},
		{"POST /v1/abort", auth.RoleClerk, s.abort},
		{"POST /v1/sales/last/void", auth.RoleManager, s.voidLast},
		{"POST /v1/receipts/last/print", auth.RoleClerk, s.printLast},
	}
}

// ServeHTTP implements http.Handler: every request passes the guard (see guard.go)
// before its handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.guard(w, r) }

// HTTPServer is the http.Server the local API runs in, with its limits, serving h
// with requests under ctx. The daemon's front (which swaps Servers when a pushed
// configuration starts a new sale path) uses it too.
func HTTPServer(ctx context.Context, h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
}

// Serve serves on ln until ctx is done; a cancelled context returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := HTTPServer(ctx, s)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api: %w", err)
	case <-ctx.Done():
		// Requests that still arrive are told posd is stopping (503) instead of
		// reaching an engine that is going away.
		s.draining.Store(true)
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	}
}

type createRequest struct {
	AmountMinor *int64 `json:"amount_minor"`
	Currency    string `json:"currency"`
	// Flow is customer_presented (default: scan the customer's code) or
	// merchant_presented (show the answer's qr to the customer).
	Flow string `json:"flow"`
	// ECRRef is the register's own reference: a create retried with the same one
	// returns the first sale (200) instead of making another.
	ECRRef string `json:"ecr_ref,omitempty"`
}

// saleAnswer is a sale with the register's reference, when it gave one.
type saleAnswer struct {
	payment.Sale
	ECRRef string `json:"ecr_ref,omitempty"`
}

func (s *Server) createSale(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if err := decodeStrict(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.AmountMinor == nil {
		writeError(w, http.StatusBadRequest, "amount_minor is required (an integer of minor units, e.g. 12000 for ₩12,000 or 1200 for HK$12.00)")
		return
	}
	if req.Currency == "" {
		writeError(w, http.StatusBadRequest, "currency is required (ISO 4217, e.g. KRW)")
		return
	}
	if req.Flow != "" && req.Flow != payment.FlowCustomerPresented && req.Flow != payment.FlowMerchantPresented {
		writeError(w, http.StatusBadRequest, "flow must be customer_presented or merchant_presented")
		return
	}
	if req.ECRRef != "" {
		if !validKey(req.ECRRef) {
			writeError(w, http.StatusBadRequest, "ecr_ref is 1-128 printable ASCII characters")
			return
		}
		if s.Keys != nil {
			s.createWithRef(w, r, req)
			return
		}
	}
	sale, err := s.create(r, req)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	s.PublishSale(sale)
	w.Header().Set("Location", "/v1/sales/"+sale.ID)
	writeJSON(w, http.StatusCreated, saleAnswer{Sale: sale, ECRRef: req.ECRRef})
}

func (s *Server) create(r *http.Request, req createRequest) (payment.Sale, error) {
	if req.Flow == payment.FlowMerchantPresented {
		return s.sales.Present(r.Context(), *req.AmountMinor, req.Currency)
	}
	return s.sales.Create(r.Context(), *req.AmountMinor, req.Currency)
}

func (s *Server) getSale(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !payment.ValidID(id) {
		writeError(w, http.StatusNotFound, "no sale with id "+fmt.Sprintf("%q", id))
		return
	}
	sale, err := s.sales.Get(id)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, saleAnswer{Sale: sale, ECRRef: s.refOf(sale.ID)})
}

func (s *Server) cancelSale(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !payment.ValidID(id) {
		writeError(w, http.StatusNotFound, "no sale with id "+fmt.Sprintf("%q", id))
		return
	}
	sale, err := s.sales.Cancel(r.Context(), id)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	s.PublishSale(sale)
	writeJSON(w, http.StatusOK, sale)
}

type codeRequest struct {
	Code string `json:"code"`
}

// scanCode applies a code read by the cash register's own scanner. The answer never
// contains the code, only its masked form.
func (s *Server) scanCode(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !payment.ValidID(id) {
		writeError(w, http.StatusNotFound, "no sale with id "+fmt.Sprintf("%q", id))
		return
	}
	var req codeRequest
	if err := decodeStrict(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Code == "" || len(req.Code) > 4096 {
		writeError(w, http.StatusBadRequest, "code is required (the scanned text, at most 4096 bytes)")
		return
	}
	sale, _, err := s.sales.ScanFor(r.Context(), id, req.Code)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	s.PublishSale(sale)
	writeJSON(w, http.StatusOK, sale)
}

type refundRequest struct {
	AmountMinor *int64 `json:"amount_minor"`
}

func (s *Server) createRefund(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !payment.ValidID(id) {
		writeError(w, http.StatusNotFound, "no sale with id "+fmt.Sprintf("%q", id))
		return
	}
	var req refundRequest
	if err := decodeStrict(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.AmountMinor == nil {
		writeError(w, http.StatusBadRequest, "amount_minor is required (an integer of minor units, at most the sale's amount less earlier refunds)")
		return
	}
	ref, err := s.sales.Refund(r.Context(), id, *req.AmountMinor)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	s.events.publish(EventRefund, ref)
	if sale, err := s.sales.Get(id); err == nil {
		s.PublishSale(sale)
	}
	w.Header().Set("Location", "/v1/refunds/"+ref.ID)
	writeJSON(w, http.StatusCreated, ref)
}

func (s *Server) getRefund(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !payment.ValidID(id) {
		writeError(w, http.StatusNotFound, "no refund with id "+fmt.Sprintf("%q", id))
		return
	}
	ref, err := s.sales.GetRefund(id)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ref)
}

// batchAnswer is a batch with its Z report.
type batchAnswer struct {
	payment.Batch
	Report string `json:"report"`
}

func (s *Server) currentBatch(w http.ResponseWriter, r *http.Request) {
	b, err := s.sales.CurrentBatch(r.Context())
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) closeBatch(w http.ResponseWriter, r *http.Request) {
	b, err := s.sales.CloseBatch(r.Context())
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	ans := batchAnswer{Batch: b, Report: payment.ZReport(b, s.Merchant)}
	s.events.publish(EventBatch, ans)
	writeJSON(w, http.StatusOK, ans)
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	b, ok := s.batch(w, r)
	if ok {
		writeJSON(w, http.StatusOK, b)
	}
}

// batchReport returns the printable Z report: text/plain, or JSON with ?format=json.
func (s *Server) batchReport(w http.ResponseWriter, r *http.Request) {
	b, ok := s.batch(w, r)
	if !ok {
		return
	}
	rep := payment.ZReport(b, s.Merchant)
	switch r.URL.Query().Get("format") {
	case "json":
		writeJSON(w, http.StatusOK, batchAnswer{Batch: b, Report: rep})
	case "", "text":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = io.WriteString(w, rep)
	default:
		writeError(w, http.StatusBadRequest, "format must be text or json")
	}
}

func (s *Server) batch(w http.ResponseWriter, r *http.Request) (payment.Batch, bool) {
	id := r.PathValue("id")
	var (
		b   payment.Batch
		err error
	)
	switch {
	case id == "current":
		b, err = s.sales.CurrentBatch(r.Context())
	case payment.ValidID(id):
		b, err = s.sales.GetBatch(id)
	default:
		writeError(w, http.StatusNotFound, "no batch with id "+fmt.Sprintf("%q", id))
		return b, false
	}
	if err != nil {
		s.writeEngineError(w, err)
		return b, false
	}
	return b, true
}

func (s *Server) getStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.status())
}

func (s *Server) writeEngineError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, payment.ErrBadAmount), errors.Is(err, payment.ErrCurrency), errors.Is(err, payment.ErrCurrencyNotAccepted), errors.Is(err, payment.ErrRefundTooLarge), errors.Is(err, payment.ErrOverflow):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, payment.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, payment.ErrBusy), errors.Is(err, payment.ErrNotWaiting), errors.Is(err, payment.ErrNoSale),
		errors.Is(err, payment.ErrAuthorizing), errors.Is(err, payment.ErrCodeReused), errors.Is(err, payment.ErrNotRefundable),
		errors.Is(err, payment.ErrNoMerchantCode), errors.Is(err, payment.ErrBatchBusy):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, ErrUpdating):
		w.Header().Set("Retry-After", "10")
		writeError(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, syscall.ENOSPC):
		s.log.Error("api: the disk is full", "err", err)
		writeError(w, http.StatusInsufficientStorage, "the terminal's disk is full: nothing was recorded; free space on the data partition (old receipts, logs) and try again")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "posd is shutting down")
	default:
		s.log.Error("request failed", "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// decodeStrict reads one JSON object: size-limited; unknown fields, duplicate keys,
// field names in another letter case and trailing data rejected.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		return fmt.Errorf("request body too large or unreadable: %w", err)
	}
	if err := checkJSONKeys(body, v); err != nil {
		return fmt.Errorf("request body is not the expected JSON object: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("request body is not the expected JSON object: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("request body has data after the JSON object")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// reprint queues a sale's receipt again: 202 once queued.
func (s *Server) reprint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !payment.ValidID(id) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no sale with id %q", id))
		return
	}
	if s.Reprint == nil {
		writeError(w, http.StatusNotImplemented, "this terminal has no printer queue")
		return
	}
	if err := s.Reprint(id); err != nil {
		if errors.Is(err, payment.ErrNotFound) {
			s.writeEngineError(w, err)
			return
		}
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"id": id, "status": "queued"})
}

type tokenRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
}

// tokenAnswer is a new token: the only answer that ever contains one.
type tokenAnswer struct {
	auth.Info
	Token string `json:"token"`
}

func (s *Server) listTokens(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"tokens": s.Tokens.List()})
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	if err := decodeStrict(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	role, err := auth.ParseRole(req.Role)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	tok, info, err := s.Tokens.Create(req.Name, role)
	switch {
	case errors.Is(err, auth.ErrExists):
		writeError(w, http.StatusConflict, err.Error())
		return
	case errors.Is(err, auth.ErrBadName):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		s.writeEngineError(w, err)
		return
	}
	by, _ := identity(r)
	s.log.Info("api: token created", "name", info.Name, "role", info.Role, "by", by.Name)
	writeJSON(w, http.StatusCreated, tokenAnswer{Info: info, Token: tok})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	err := s.Tokens.Revoke(name)
	switch {
	case errors.Is(err, auth.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, auth.ErrAdmin):
		writeError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		s.writeEngineError(w, err)
		return
	}
	if s.Sessions != nil {
		s.Sessions.EndFor(name) // the page sessions it opened end with it
	}
	by, _ := identity(r)
	s.log.Info("api: token revoked", "name", name, "by", by.Name)
	writeJSON(w, http.StatusOK, map[string]string{"name": name, "status": "revoked"})
}
