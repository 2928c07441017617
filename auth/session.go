package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	stdsync "sync"
	"time"
)

// SessionCookie is the name of the clerk page's session cookie.
const SessionCookie = "wl_session"

// DefaultSessionTTL is how long a session lives without use: a session untouched for
// this long is gone, and the page asks the clerk to sign in again.
const DefaultSessionTTL = 12 * time.Hour

// maxSessions bounds the sessions kept at once; the oldest is dropped beyond it.
const maxSessions = 1024

// Sessions are the clerk page's signed-in browsers. A session id is 256 random bits
// sent only in an HttpOnly cookie; the table keeps its SHA-256, the identity it
// stands for and when it was last used. Sessions live in memory: a restart of posd
// signs every page out. Safe for concurrent use.
type Sessions struct {
	// TTL is the idle lifetime; zero means DefaultSessionTTL.
	TTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu   stdsync.Mutex
	byID map[[32]byte]*session // guarded by mu
}

type session struct {
	info    Info
	created time.Time
	used    time.Time
}

func (s *Sessions) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Sessions) ttl() time.Duration {
	if s.TTL > 0 {
		return s.TTL
	}
	return DefaultSessionTTL
}

// Start opens a session for info and returns its id, the cookie's value.
func (s *Sessions) Start(info Info) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: session: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = map[[32]byte]*session{}
	}
	if len(s.byID) >= maxSessions {
		s.evict(now)
	}
	s.byID[sha256.Sum256([]byte(id))] = &session{info: info, created: now, used: now}
	return id, nil
}

// evict drops expired sessions, then the least recently used one if still full;
// s.mu is held.
func (s *Sessions) evict(now time.Time) {
	var (
		oldKey [32]byte
		oldest time.Time
	)
	for k, v := range s.byID {
		if now.Sub(v.used) > s.ttl() {
			delete(s.byID, k)
			continue
		}
		if oldest.IsZero() || v.used.Before(oldest) {
			oldKey, oldest = k, v.used
		}
	}
	if len(s.byID) >= maxSessions {
		delete(s.byID, oldKey)
	}
}

// Check returns the identity of a live session and renews it; an unknown or expired
// id returns false (and an expired one is forgotten). The lookup is by the id's
// SHA-256, so its timing says nothing about stored ids.
func (s *Sessions) Check(id string) (Info, bool) {
	if id == "" {
		return Info{}, false
	}
	key := sha256.Sum256([]byte(id))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.byID[key]
	if !ok {
		return Info{}, false
	}
	if now.Sub(v.used) > s.ttl() {
		delete(s.byID, key)
		return Info{}, false
	}
	v.used = now
	return v.info, true
}

// Alive reports whether a session is still live, without renewing it (for a long
// event stream, which is not a use by the clerk).
func (s *Sessions) Alive(id string) bool {
	key := sha256.Sum256([]byte(id))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.byID[key]
	return ok && now.Sub(v.used) <= s.ttl()
}

// End forgets a session (sign-out); unknown ids are ignored.
func (s *Sessions) End(id string) {
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, key)
}

// EndFor forgets every session of the named identity, e.g. when its token or PIN is
// revoked.
func (s *Sessions) EndFor(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.byID {
		if v.info.Name == name {
			delete(s.byID, k)
		}
	}
}
