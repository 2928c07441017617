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
	"time"

	"github.com/walletless/walletless/payment"
)

// MaxBody bounds a request body.
const MaxBody = 64 << 10

// Sales is what the API needs from the sale engine; *payment.Engine satisfies it.
type Sales interface {
	Create(ctx context.Context, amountMinor int64, currency string) (payment.Sale, error)
	Get(id string) (payment.Sale, error)
	Cancel(ctx context.Context, id string) (payment.Sale, error)
}

// Server is the HTTP API.
type Server struct {
	sales  Sales
	status func() any
	log    *slog.Logger
	mux    *http.ServeMux
}

// New returns the API; status returns the JSON-encodable terminal status.
func New(sales Sales, status func() any, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{sales: sales, status: status, log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST /v1/sales", s.createSale)
	s.mux.HandleFunc("GET /v1/sales/{id}", s.getSale)
	s.mux.HandleFunc("POST /v1/sales/{id}/cancel", s.cancelSale)
	s.mux.HandleFunc("GET /v1/status", s.getStatus)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Serve serves on ln until ctx is done; a cancelled context returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("api: %w", err)
	case <-ctx.Done():
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
	sale, err := s.sales.Create(r.Context(), *req.AmountMinor, req.Currency)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	w.Header().Set("Location", "/v1/sales/"+sale.ID)
	writeJSON(w, http.StatusCreated, sale)
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
	writeJSON(w, http.StatusOK, sale)
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
	writeJSON(w, http.StatusOK, sale)
}

func (s *Server) getStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.status())
}

func (s *Server) writeEngineError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, payment.ErrBadAmount), errors.Is(err, payment.ErrCurrency):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, payment.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, payment.ErrBusy), errors.Is(err, payment.ErrNotWaiting):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusServiceUnavailable, "posd is shutting down")
	default:
		s.log.Error("request failed", "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// decodeStrict reads one JSON object: size-limited, unknown fields and trailing data
// rejected.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		return fmt.Errorf("request body too large or unreadable: %w", err)
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
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
