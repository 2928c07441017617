package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/walletless/walletless/internal/secretfile"
	wsync "github.com/walletless/walletless/sync"
)

// The ledger server's HTTP interface (HTTP or HTTPS, optionally with client
// certificates; JSON, every call with "Authorization: Bearer TOKEN" when the server
// has a token):
//
//	POST /v1/apply                  {"v":1,"messages":[{"kind","device","payload"}…]}
//	                                → {"v":1,"answers":[{"result","fresh","ignored"}…]}
//	GET  /v1/health                 → {"v":1}
//	GET  /v1/ledger/entries         JSON lines: Entry
//	GET  /v1/ledger/totals          JSON lines: Total
//	GET  /v1/ledger/attempts        JSON lines: Attempt
//	GET  /v1/ledger/batches         JSON lines: Batch
//
// Errors are a 4xx or 5xx status with {"error": "…"}.

// Limits of one apply call. A Remote splits a larger batch into several calls (each
// one transaction).
const (
	MaxApplyMessages = 1024     // messages in one apply request
	MaxApplyBody     = 16 << 20 // bytes of one apply request body
)

// Errors of the ledger server and its client.
var (
	// ErrLedgerUnreachable: the ledger server did not answer (down, network, timeout).
	// Transient: the devices resend and the next batch tries again.
	ErrLedgerUnreachable = errors.New("gateway: ledger server unreachable")
	// ErrLedgerRefused: the ledger server answered with an error status.
	ErrLedgerRefused = errors.New("gateway: ledger server refused the request")
	// ErrUnauthorized: the ledger server refused the bearer token (401). Permanent
	// until the token files agree.
	ErrUnauthorized = errors.New("gateway: ledger server refused the token")
	// ErrBadLedgerAnswer: the ledger server's answer does not fit the request.
	ErrBadLedgerAnswer = errors.New("gateway: bad answer from the ledger server")
	// ErrLedgerTLS: the TLS handshake with the ledger server failed (its certificate
	// does not verify, it refused this client's certificate, or one side does not
	// speak TLS). Permanent until the certificates or URLs agree.
	ErrLedgerTLS = errors.New("gateway: TLS with the ledger server failed")
	// ErrInsecureListen: a ledger listener on a non-loopback address needs a token
	// or mutual TLS.
	ErrInsecureListen = errors.New("gateway: a ledger listener on a non-loopback address needs a token or mutual TLS")
	// ErrBadTLSFiles: a certificate, key or CA file of the ledger link is missing,
	// unreadable or not valid PEM, or a certificate was given without its key.
	ErrBadTLSFiles = errors.New("gateway: ledger TLS files")
	// ErrBadToken: the token file is empty or its token too short or not printable.
	ErrBadToken = errors.New("gateway: bad ledger token")
)

// wireMessage is one Message on the wire: the payload is the device message's JSON,
// decoded and validated again by the server.
type wireMessage struct {
	Kind    string          `json:"kind"`
	Device  string          `json:"device"`
	Payload json.RawMessage `json:"payload"`
}

type applyRequest struct {
	V        int           `json:"v"`
	Messages []wireMessage `json:"messages"`
}

type applyResponse struct {
	V       int      `json:"v"`
	Answers []Answer `json:"answers"`
}

// MinTokenLen is the shortest bearer token ReadToken accepts.
const MinTokenLen = 16

// ReadToken reads the shared bearer token from path: the file's content with
// surrounding white space trimmed, at least MinTokenLen printable ASCII characters.
// A token file its group or others can read is refused (secretfile.ErrTooOpen, with
// the chmod to run).
func ReadToken(path string) (string, error) {
	raw, err := secretfile.Read(path) // refused when group or others can read it
	if err != nil {
		return "", fmt.Errorf("gateway: ledger token: %w", err)
	}
	tok := strings.TrimSpace(string(raw))
	if len(tok) < MinTokenLen {
		return "", fmt.Errorf("%w: %s holds %d characters, want at least %d", ErrBadToken, path, len(tok), MinTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] > '~' {
			return "", fmt.Errorf("%w: %s holds a character that is not printable ASCII", ErrBadToken, path)
		}
	}
	return tok, nil
}

// CheckListen refuses a ledger listener on addr (host:port) that authenticates
// nobody unless the host is a loopback address: anyone who can reach the port could
// write the ledger. A listener authenticates its clients with a token, with mutual
// TLS (mutualTLS: a client certificate signed by the configured CA is required), or
// with both (recommended: a copied client key alone is then not enough).
func CheckListen(addr, token string, mutualTLS bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("gateway: ledger listen address %q: %w", addr, err)
	}
	if token != "" || mutualTLS {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w (%s)", ErrInsecureListen, addr)
}

// ServerConfig configures a ledger Server.
type ServerConfig struct {
	Local *Local // the ledger and the decision rules
	Token string // bearer token every call must carry; empty: none (see CheckListen)
	// TLS, when set, makes the server speak HTTPS only (see ServerTLSConfig); with
	// ClientAuth tls.RequireAndVerifyClientCert it requires client certificates.
	TLS *tls.Config
	Log *slog.Logger
}

// Server serves a Local ledger over HTTP to posgw processes running with a Remote,
// so that several processes decide every key against one ledger. It trusts nothing a
// client sends: every message is decoded and validated again, and the decision rules
// are the server's.
type Server struct {
	local    *Local
	tls      *tls.Config
	token    [sha256.Size]byte
	hasToken bool
	log      *slog.Logger
	refused  atomic.Uint64
	mux      *http.ServeMux
}

// NewServer returns a Server.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Local == nil {
		return nil, fmt.Errorf("gateway: ledger server needs a Local")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Server{local: cfg.Local, log: cfg.Log, hasToken: cfg.Token != "", token: sha256.Sum256([]byte(cfg.Token))}
	if cfg.TLS != nil {
		if len(cfg.TLS.Certificates) == 0 && cfg.TLS.GetCertificate == nil {
			return nil, fmt.Errorf("gateway: ledger server TLS configuration without a certificate")
		}
		s.tls = cfg.TLS.Clone()
		if s.tls.MinVersion < tls.VersionTLS12 {
			s.tls.MinVersion = tls.VersionTLS12
		}
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /v1/apply", s.auth(s.handleApply))
	s.mux.HandleFunc("GET /v1/health", s.auth(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int{"v": wsync.Version})
	}))
	s.mux.HandleFunc("GET /v1/ledger/{view}", s.auth(s.handleList))
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Serve answers on ln until ctx is done (a clean stop returns nil); it closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      2 * time.Minute, // listings of a big ledger
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		TLSConfig:         s.tls,
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		case <-done:
		}
	}()
	defer close(done)
	mutual := s.tls != nil && s.tls.ClientAuth == tls.RequireAndVerifyClientCert
	s.log.Info("ledger server listening", "addr", ln.Addr().String(), "token", s.hasToken, "tls", s.tls != nil, "mutual_tls", mutual)
	var err error
	if s.tls != nil {
		err = srv.ServeTLS(ln, "", "") // the certificates are in srv.TLSConfig
	} else {
		err = srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("gateway: ledger server: %w", err)
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.hasToken {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			sum := sha256.Sum256([]byte(got))
			if !ok || subtle.ConstantTimeCompare(sum[:], s.token[:]) != 1 {
				if n := s.refused.Add(1); n == 1 || n%100 == 0 {
					s.log.Warn("ledger call without the right token refused", "remote", r.RemoteAddr, "refused_so_far", n)
				}
				w.Header().Set("WWW-Authenticate", `Bearer realm="posgw ledger"`)
				writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
				return
			}
		}
		h(w, r)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// decodeApply reads an apply request strictly (unknown fields, trailing data, wrong
// version and bad message counts are errors) and checks every message on its own:
// msgs[i] is valid when ignored[i] is empty.
func decodeApply(r io.Reader) (msgs []Message, ignored []string, err error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var req applyRequest
	if err := dec.Decode(&req); err != nil {
		return nil, nil, fmt.Errorf("gateway: malformed apply request: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, fmt.Errorf("gateway: malformed apply request: data after the JSON object")
	}
	if req.V != wsync.Version {
		return nil, nil, fmt.Errorf("gateway: apply request version %d, want %d", req.V, wsync.Version)
	}
	if len(req.Messages) == 0 || len(req.Messages) > MaxApplyMessages {
		return nil, nil, fmt.Errorf("gateway: apply request with %d messages (1 to %d)", len(req.Messages), MaxApplyMessages)
	}
	msgs = make([]Message, len(req.Messages))
	ignored = make([]string, len(req.Messages))
	for i, w := range req.Messages {
		m, err := checkWire(w)
		if err != nil {
			ignored[i] = err.Error()
			continue
		}
		msgs[i] = m
	}
	return msgs, ignored, nil
}

// checkWire decodes and validates one message as if it had arrived on its device's
// topic.
func checkWire(w wireMessage) (Message, error) {
	if !wsync.ValidDeviceID(w.Device) {
		return Message{}, fmt.Errorf("gateway: invalid device id")
	}
	msg, key, claimed, err := wsync.DecodeUp(w.Kind, w.Payload)
	if err != nil {
		return Message{}, err
	}
	if claimed != w.Device {
		return Message{}, fmt.Errorf("gateway: message claims device %q, sent for %q", claimed, w.Device)
	}
	return Message{Kind: w.Kind, Device: w.Device, Key: key, Msg: msg}, nil
}

func (s *Server) handleApply(w http.ResponseWriter, r *http.Request) {
	body := http.MaxBytesReader(w, r.Body, MaxApplyBody)
	msgs, ignored, err := decodeApply(body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("apply request larger than %d bytes", MaxApplyBody))
			return
		}
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	valid := make([]Message, 0, len(msgs))
	for i, m := range msgs {
		if ignored[i] == "" {
			valid = append(valid, m)
		} else {
			s.log.Warn("ledger server ignoring an invalid message", "device", m.Device, "err", ignored[i])
		}
	}
	var applied []Answer
	if len(valid) > 0 {
		applied, err = s.local.Apply(r.Context(), valid)
		if err != nil {
			s.log.Error("ledger write failed", "messages", len(valid), "err", err)
			writeError(w, http.StatusInternalServerError, "ledger write failed")
			return
		}
	}
	answers := make([]Answer, len(msgs))
	for i := range msgs {
		if ignored[i] != "" {
			answers[i] = Answer{Ignored: ignored[i]}
			continue
		}
		answers[i], applied = applied[0], applied[1:]
	}
	writeJSON(w, http.StatusOK, applyResponse{V: wsync.Version, Answers: answers})
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	l := s.local.Ledger()
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	w.Header().Set("Content-Type", "application/x-ndjson")
	var err error
	switch r.PathValue("view") {
	case "entries":
		err = l.ForEach(func(e Entry) error { return enc.Encode(e) })
	case "attempts":
		err = l.ForEachAttempt(func(a Attempt) error { return enc.Encode(a) })
	case "batches":
		err = l.ForEachBatch(func(b Batch) error { return enc.Encode(b) })
	case "totals":
		var ts []Total
		if ts, err = l.Totals(); err == nil {
			for _, t := range ts {
				if err = enc.Encode(t); err != nil {
					break
				}
			}
		}
	default:
		writeError(w, http.StatusNotFound, "unknown ledger view")
		return
	}
	if err != nil {
		// A read error or a client gone away: the listing stops without its final
		// {"end":true} line, which the client reports as a truncated listing.
		s.log.Warn("ledger listing failed", "view", r.PathValue("view"), "err", err)
		_ = bw.Flush()
		return
	}
	_ = enc.Encode(map[string]bool{"end": true})
	_ = bw.Flush()
}

// RemoteConfig configures a Remote.
type RemoteConfig struct {
	URL   string // the ledger server: http://host:7601, or https://host:7601 for TLS
	Token string // bearer token (see ReadToken)
	// Timeout bounds every apply call (connect, request, answer); default 10s.
	// Listings get 12 times as long.
	Timeout time.Duration
	// TLS verifies the server and carries the client certificate of an https URL
	// (see ClientTLSConfig); nil: the system's roots, no client certificate. Setting
	// it with an http URL is an error: the files would silently not be used.
	TLS *tls.Config
}

// Remote is an Applier (and a read-only ledger view) backed by another posgw's
// ledger Server.
type Remote struct {
	base    *url.URL
	token   string
	timeout time.Duration
	client  *http.Client
}

// NewRemote returns a client of the ledger server at cfg.URL.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("gateway: ledger URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gateway: ledger URL %q: want http://host:port or https://host:port", cfg.URL)
	}
	if cfg.TLS != nil && u.Scheme != "https" {
		return nil, fmt.Errorf("gateway: ledger URL %q: TLS settings need an https:// URL", cfg.URL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = cfg.Timeout
	tr.ResponseHeaderTimeout = 12 * cfg.Timeout
	tr.MaxIdleConnsPerHost = 8
	tr.Proxy = nil // the ledger link is a private one
	if cfg.TLS != nil {
		tr.TLSClientConfig = cfg.TLS.Clone()
		if tr.TLSClientConfig.MinVersion < tls.VersionTLS12 {
			tr.TLSClientConfig.MinVersion = tls.VersionTLS12
		}
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &Remote{base: u, token: cfg.Token, timeout: cfg.Timeout, client: &http.Client{Transport: tr}}, nil
}

// URL is the ledger server's address with any user information removed.
func (r *Remote) URL() string { u := *r.base; u.User = nil; return u.String() }

// do sends one call bounded by d and returns the response when its status is 200.
func (r *Remote) do(ctx context.Context, d time.Duration, method, path string, body []byte) (*http.Response, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.base.String()+path, rd)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("gateway: ledger request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		cancel()
		if isTLSFailure(err) {
			return nil, nil, fmt.Errorf("%w: %s %s: %w", ErrLedgerTLS, method, path, err)
		}
		return nil, nil, fmt.Errorf("%w: %s %s: %w", ErrLedgerUnreachable, method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&e)
		resp.Body.Close()
		cancel()
		if resp.StatusCode == http.StatusUnauthorized {
			return nil, nil, fmt.Errorf("%w (%s %s)", ErrUnauthorized, method, path)
		}
		return nil, nil, fmt.Errorf("%w: %s %s: %s: %s", ErrLedgerRefused, method, path, resp.Status, e.Error)
	}
	return resp, cancel, nil
}

// Ping checks that the ledger server answers and accepts the token.
func (r *Remote) Ping(ctx context.Context) error {
	resp, cancel, err := r.do(ctx, r.timeout, http.MethodGet, "/v1/health", nil)
	if err != nil {
		return err
	}
	defer cancel()
	resp.Body.Close()
	return nil
}

// Apply sends msgs to the ledger server, in several calls (each one transaction on
// the server) when they exceed MaxApplyMessages or MaxApplyBody. When a call fails
// Apply returns its error and no answers; messages of earlier calls were recorded
// and are answered from the ledger when the devices resend.
func (r *Remote) Apply(ctx context.Context, msgs []Message) ([]Answer, error) {
	wire := make([]wireMessage, len(msgs))
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for i, m := range msgs {
		buf.Reset()
		if err := enc.Encode(m.Msg); err != nil {
			return nil, fmt.Errorf("gateway: encode %s message: %w", m.Kind, err)
		}
		wire[i] = wireMessage{Kind: m.Kind, Device: m.Device, Payload: bytes.TrimSuffix(bytes.Clone(buf.Bytes()), []byte("\n"))}
	}
	answers := make([]Answer, 0, len(msgs))
	for start := 0; start < len(wire); {
		end, size := start, 0
		for end < len(wire) && end-start < MaxApplyMessages {
			n := len(wire[end].Payload) + len(wire[end].Kind) + len(wire[end].Device) + 48
			if end > start && size+n > MaxApplyBody-1024 {
				break
			}
			size += n
			end++
		}
		got, err := r.applyOnce(ctx, wire[start:end], msgs[start:end])
		if err != nil {
			return nil, err
		}
		answers = append(answers, got...)
		start = end
	}
	return answers, nil
}

func (r *Remote) applyOnce(ctx context.Context, wire []wireMessage, msgs []Message) ([]Answer, error) {
	body, err := json.Marshal(applyRequest{V: wsync.Version, Messages: wire})
	if err != nil {
		return nil, fmt.Errorf("gateway: encode apply request: %w", err)
	}
	resp, cancel, err := r.do(ctx, r.timeout, http.MethodPost, "/v1/apply", body)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer resp.Body.Close()
	var out applyResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 2*MaxApplyBody)).Decode(&out); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadLedgerAnswer, err)
	}
	if out.V != wsync.Version || len(out.Answers) != len(msgs) {
		return nil, fmt.Errorf("%w: version %d, %d answers for %d messages", ErrBadLedgerAnswer, out.V, len(out.Answers), len(msgs))
	}
	for i, a := range out.Answers {
		if a.Ignored != "" {
			continue
		}
		if err := a.Result.Validate(); err != nil || a.Result.Key != msgs[i].Key || a.Result.Kind != msgs[i].Kind {
			return nil, fmt.Errorf("%w: answer %d does not fit message %s/%s", ErrBadLedgerAnswer, i, msgs[i].Kind, msgs[i].Key)
		}
	}
	return out.Answers, nil
}

// list streams a ledger view, decoding each line into a T for fn.
func list[T any](r *Remote, view string, fn func(T) error) error {
	resp, cancel, err := r.do(context.Background(), 12*r.timeout, http.MethodGet, "/v1/ledger/"+view, nil)
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("%w: %s listing ended early: %w", ErrBadLedgerAnswer, view, err)
		}
		var end struct {
			End bool `json:"end"`
		}
		if json.Unmarshal(raw, &end) == nil && end.End {
			return nil
		}
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrBadLedgerAnswer, view, err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
}

// ForEach calls fn for every sale and refund of the remote ledger in key order.
func (r *Remote) ForEach(fn func(Entry) error) error { return list(r, "entries", fn) }

// ForEachAttempt calls fn for every audit record of the remote ledger.
func (r *Remote) ForEachAttempt(fn func(Attempt) error) error { return list(r, "attempts", fn) }

// ForEachBatch calls fn for every batch of the remote ledger.
func (r *Remote) ForEachBatch(fn func(Batch) error) error { return list(r, "batches", fn) }

// Totals returns the remote ledger's totals per device and currency.
func (r *Remote) Totals() ([]Total, error) {
	var out []Total
	err := list(r, "totals", func(t Total) error { out = append(out, t); return nil })
	return out, err
}
