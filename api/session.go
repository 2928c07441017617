package api

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/walletless/walletless/auth"
)

// PINStore is what the API needs from the clerks' PINs; *auth.PINs satisfies it.
type PINStore interface {
	Check(name, pin string) (auth.Info, bool)
	Set(name string, role auth.Role, pin string) (auth.Info, error)
	Remove(name string) error
	List() []auth.Info
}

type signInRequest struct {
	Token string `json:"token,omitempty"`
	Name  string `json:"name,omitempty"`
	PIN   string `json:"pin,omitempty"`
}

// sessionAnswer says who is signed in.
type sessionAnswer struct {
	Name string    `json:"name"`
	Role auth.Role `json:"role"`
	// Via is "session" (the page's cookie) or "bearer" (a register's token).
	Via string `json:"via"`
}

// signIn is POST /v1/session: a token, or a clerk's name and PIN, buys a session
// cookie (HttpOnly, SameSite=Strict, Secure under TLS). Failures count towards the
// per-address slowdown like bad tokens.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	if s.Sessions == nil {
		writeError(w, http.StatusNotImplemented, "this terminal has no page sessions")
		return
	}
	remote := remoteHost(r)
	if wait := s.limit.blocked(remote); wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("api: too many failed attempts from %s; try again in %d s", remote, secs))
		return
	}
	var req signInRequest
	if err := decodeStrict(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var (
		info auth.Info
		ok   bool
	)
	switch {
	case req.Token != "" && req.PIN == "" && req.Name == "":
		if s.Tokens != nil {
			info, ok = s.Tokens.Check(req.Token)
		}
	case req.Token == "" && req.Name != "" && req.PIN != "":
		if s.PINs != nil {
			info, ok = s.PINs.Check(req.Name, req.PIN)
		}
	default:
		writeError(w, http.StatusBadRequest, "send either {\"token\": ...} or {\"name\": ..., \"pin\": ...}")
		return
	}
	if !ok {
		n := s.limit.fail(remote)
		s.log.Warn("api: sign-in refused", "remote", remote, "name", req.Name, "failures", n)
		writeError(w, http.StatusUnauthorized, "api: sign-in refused: wrong name, PIN or token")
		return
	}
	s.limit.success(remote)
	id, err := s.Sessions.Start(info)
	if err != nil {
		s.writeEngineError(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: auth.SessionCookie, Value: id, Path: "/",
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	s.log.Info("api: signed in", "name", info.Name, "role", info.Role, "remote", remote)
	writeJSON(w, http.StatusOK, sessionAnswer{Name: info.Name, Role: info.Role, Via: "session"})
}

// whoAmI is GET /v1/session.
func (s *Server) whoAmI(w http.ResponseWriter, r *http.Request) {
	info, _ := identity(r)
	via := "bearer"
	if r.Header.Get("Authorization") == "" {
		via = "session"
	}
	writeJSON(w, http.StatusOK, sessionAnswer{Name: info.Name, Role: info.Role, Via: via})
}

// signOut is DELETE /v1/session: the session ends and the cookie is cleared.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(auth.SessionCookie); err == nil && s.Sessions != nil {
		s.Sessions.End(c.Value)
	}
	http.SetCookie(w, &http.Cookie{
		Name: auth.SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	writeJSON(w, http.StatusOK, map[string]string{"status": "signed out"})
}

type pinRequest struct {
	Name string `json:"name"`
	Role string `json:"role"`
	PIN  string `json:"pin"`
}

func (s *Server) listPINs(w http.ResponseWriter, _ *http.Request) {
	if s.PINs == nil {
		writeError(w, http.StatusNotImplemented, "this terminal has no PIN store")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"pins": s.PINs.List()})
}

// setPIN is POST /v1/pins (manager): give a clerk a PIN for the page.
func (s *Server) setPIN(w http.ResponseWriter, r *http.Request) {
	if s.PINs == nil {
		writeError(w, http.StatusNotImplemented, "this terminal has no PIN store")
		return
	}
	var req pinRequest
	if err := decodeStrict(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	role, err := auth.ParseRole(req.Role)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	info, err := s.PINs.Set(req.Name, role, req.PIN)
	switch {
	case errors.Is(err, auth.ErrBadName), errors.Is(err, auth.ErrBadPIN):
		writeError(w, http.StatusBadRequest, err.Error())
		return
	case err != nil:
		s.writeEngineError(w, err)
		return
	}
	if s.Sessions != nil {
		s.Sessions.EndFor(info.Name) // an old PIN's sessions end with it
	}
	by, _ := identity(r)
	s.log.Info("api: PIN set", "name", info.Name, "role", info.Role, "by", by.Name)
	writeJSON(w, http.StatusCreated, info)
}

func (s *Server) removePIN(w http.ResponseWriter, r *http.Request) {
	if s.PINs == nil {
		writeError(w, http.StatusNotImplemented, "this terminal has no PIN store")
		return
	}
	name := r.PathValue("name")
	if err := s.PINs.Remove(name); err != nil {
		if errors.Is(err, auth.ErrNotFound) {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		s.writeEngineError(w, err)
		return
	}
	if s.Sessions != nil {
		s.Sessions.EndFor(name)
	}
	writeJSON(w, http.StatusOK, map[string]string{"name": name, "status": "removed"})
}
