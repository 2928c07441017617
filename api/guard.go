package api

import (
	"context"
	"fmt"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	stdsync "sync"
	"time"

	"github.com/walletless/walletless/auth"
)

// Tokens is what the API needs from the token store; *auth.Store satisfies it.
type Tokens interface {
	Check(token string) (auth.Info, bool)
	Create(name string, role auth.Role) (string, auth.Info, error)
	Revoke(name string) error
	List() []auth.Info
}

// Failed-attempt slowdown: after FreeFailures bad tokens from one remote address, every
// request from it answers 429 for a delay that doubles with each further failure, up
// to MaxPenalty. A good token resets the count.
const (
	FreeFailures = 5
	MaxPenalty   = time.Minute
	maxTracked   = 4096 // remote addresses remembered at once
)

type identityKey struct{}

// identity returns the authenticated caller of r.
func identity(r *http.Request) (auth.Info, bool) {
	i, ok := r.Context().Value(identityKey{}).(auth.Info)
	return i, ok
}

// guard runs every check that comes before a handler, in this order: recover from a
// panic (500), draining (503), Host (421), Origin (403), slowdown (429), bearer token
// (401), Content-Type of a state-changing request (415). The role is checked by the
// route (403).
func (s *Server) guard(w http.ResponseWriter, r *http.Request) {
	rw := &trackingWriter{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			// The panic value may hold request data; only runtime errors (which never
			// do) are logged with their message.
			msg := fmt.Sprintf("%T", v)
			if re, ok := v.(runtime.Error); ok {
				msg = re.Error()
			}
			s.log.Error("api: handler panicked", "method", r.Method, "path", r.URL.Path, "panic", msg, "stack", string(debug.Stack()))
			if !rw.wrote {
				writeError(rw, http.StatusInternalServerError, "internal error; posd keeps running and logged it")
			}
		}
	}()
	if s.draining.Load() {
		rw.Header().Set("Connection", "close")
		rw.Header().Set("Retry-After", "5")
		writeError(rw, http.StatusServiceUnavailable, "posd is stopping; try again when it is back")
		return
	}
	if !s.hostAllowed(r) {
		s.log.Warn("api: request refused: foreign Host header", "host", r.Host, "remote", r.RemoteAddr)
		writeError(rw, http.StatusMisdirectedRequest, "api: Host "+strconv.Quote(r.Host)+" is not this terminal; use its address, localhost or its host name")
		return
	}
	if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r) {
		s.log.Warn("api: request refused: cross-origin", "origin", o, "remote", r.RemoteAddr)
		writeError(rw, http.StatusForbidden, "api: cross-origin requests are refused (Origin "+strconv.Quote(o)+")")
		return
	}
	if s.Page != nil && safeMethod(r.Method) && !strings.HasPrefix(r.URL.Path, "/v1/") && r.URL.Path != "/metrics" {
		s.Page.ServeHTTP(rw, r) // the clerk's page: public, it holds no data
		return
	}
	if !safeMethod(r.Method) {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		// An artifact upload is the one binary body (a browser must preflight it too).
		upload := mt == "application/octet-stream" && r.Method == http.MethodPost && r.URL.Path == "/v1/firmware"
		if err != nil || mt != "application/json" && !upload {
			writeError(rw, http.StatusUnsupportedMediaType, "api: a "+r.Method+" request must have Content-Type: application/json")
			return
		}
	}
	if r.Method == http.MethodPost && r.URL.Path == "/v1/session" {
		s.signIn(rw, r) // sign-in is the one call without credentials
		return
	}
	info, ok := s.authenticate(rw, r)
	if !ok {
		return
	}
	r = r.WithContext(contextWith(r, info))
	s.mux.ServeHTTP(rw, r)
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// authenticate checks the bearer token; it answers 401 or 429 itself and returns false
// then. Failures are logged with the remote address, never with the token.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (auth.Info, bool) {
	remote := remoteHost(r)
	if wait := s.limit.blocked(remote); wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("api: too many failed attempts from %s; try again in %d s", remote, secs))
		return auth.Info{}, false
	}
	h := r.Header.Get("Authorization")
	if c, err := r.Cookie(auth.SessionCookie); h == "" && err == nil && s.Sessions != nil {
		return s.cookieAuth(w, r, c.Value)
	}
	if h == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="posd"`)
		writeError(w, http.StatusUnauthorized, "api: missing Authorization: Bearer TOKEN (posd wrote a manager token to admin.token in its data directory; posctl token create makes more)")
		return auth.Info{}, false
	}
	scheme, tok, found := strings.Cut(h, " ")
	var (
		info auth.Info
		ok   bool
	)
	if found && strings.EqualFold(scheme, "Bearer") && s.Tokens != nil {
		info, ok = s.Tokens.Check(strings.TrimSpace(tok))
	}
	if !ok {
		n := s.limit.fail(remote)
		s.log.Warn("api: request refused: bad token", "remote", remote, "method", r.Method, "path", r.URL.Path, "failures", n)
		w.Header().Set("WWW-Authenticate", `Bearer realm="posd", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "api: the bearer token is not valid (revoked, mistyped or from another terminal)")
		return auth.Info{}, false
	}
	s.limit.success(remote)
	return info, true
}

// cookieAuth authenticates the page's session cookie. A state-changing request with
// a cookie must also carry its own Origin (browsers always send one on such
// requests): with SameSite=Strict, the Origin check and the JSON Content-Type, a
// cross-site page cannot make a signed-in browser change anything. An unknown or
// expired session is not counted as a failed attempt (it is 256 random bits; a
// restart of posd ends every session).
func (s *Server) cookieAuth(w http.ResponseWriter, r *http.Request, id string) (auth.Info, bool) {
	if !safeMethod(r.Method) && r.Header.Get("Origin") == "" {
		writeError(w, http.StatusForbidden, "api: a "+r.Method+" with the page's session cookie must carry the page's Origin")
		return auth.Info{}, false
	}
	info, ok := s.Sessions.Check(id)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="posd"`)
		writeError(w, http.StatusUnauthorized, "api: the session has expired or posd restarted; sign in again")
		return auth.Info{}, false
	}
	return info, true
}

// needs wraps a handler with a role check: 403 for a token whose role is too low.
func needs(role auth.Role, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		info, ok := identity(r)
		if !ok || !info.Role.Allows(role) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("api: this needs a %s token; %q is a %s token", role, info.Name, info.Role))
			return
		}
		h(w, r)
	}
}

// hostAllowed is the DNS-rebinding defence: the Host header must name this terminal
// (localhost, a loopback address, the address the connection came in on, the
// configured address or the device's host name) with the listener's port.
func (s *Server) hostAllowed(r *http.Request) bool {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		host, port = r.Host, ""
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	if host == "" {
		return false
	}
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if tcp, ok := local.(*net.TCPAddr); ok {
		want := strconv.Itoa(tcp.Port)
		if port == "" {
			port = "80"
			if r.TLS != nil {
				port = "443"
			}
		}
		if port != want {
			return false
		}
		if ip := net.ParseIP(host); ip != nil && ip.Equal(tcp.IP) {
			return true
		}
	}
	if host == "localhost" {
		return true
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return true
	}
	for _, h := range s.Hosts {
		if strings.EqualFold(strings.TrimSuffix(h, "."), host) {
			return true
		}
	}
	return false
}

// sameOrigin reports whether the Origin header is the API's own origin.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Path != "" && u.Path != "/" {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(u.Host, r.Host)
}

func remoteHost(r *http.Request) string {
	h, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return h
}

// trackingWriter remembers whether the answer's header went out.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackingWriter) WriteHeader(code int) {
	t.wrote = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// limiter counts failed attempts per remote address.
type limiter struct {
	now func() time.Time

	mu    stdsync.Mutex
	state map[string]*attempts // guarded by mu
}

type attempts struct {
	fails int
	until time.Time // no request from this address is served before this
	last  time.Time
}

func newLimiter() *limiter {
	return &limiter{now: time.Now, state: map[string]*attempts{}}
}

// blocked returns how long remote must still wait, or 0.
func (l *limiter) blocked(remote string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, ok := l.state[remote]
	if !ok {
		return 0
	}
	if d := a.until.Sub(l.now()); d > 0 {
		return d
	}
	return 0
}

// fail counts a failure and returns the count.
func (l *limiter) fail(remote string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	a, ok := l.state[remote]
	if !ok {
		if len(l.state) >= maxTracked {
			l.prune(now)
		}
		a = &attempts{}
		l.state[remote] = a
	}
	a.fails++
	a.last = now
	if a.fails >= FreeFailures {
		d := min(time.Second<<min(a.fails-FreeFailures, 16), MaxPenalty)
		a.until = now.Add(d)
	}
	return a.fails
}

func (l *limiter) success(remote string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.state, remote)
}

// prune forgets addresses quiet for ten minutes, or all of them when that is not
// enough; l.mu is held.
func (l *limiter) prune(now time.Time) {
	for k, a := range l.state {
		if now.Sub(a.last) > 10*time.Minute {
			delete(l.state, k)
		}
	}
	if len(l.state) >= maxTracked {
		clear(l.state)
	}
}

func contextWith(r *http.Request, info auth.Info) context.Context {
	return context.WithValue(r.Context(), identityKey{}, info)
}
