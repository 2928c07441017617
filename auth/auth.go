package auth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	stdsync "sync"
	"time"

	"github.com/walletless/walletless/internal/secretfile"
)

// Role is what a token may do.
type Role string

// The roles, from least to most trusted.
const (
	RoleClerk   Role = "clerk"
	RoleManager Role = "manager"
)

// Allows reports whether r may do what need requires: a manager may do everything a
// clerk may.
func (r Role) Allows(need Role) bool {
	switch need {
	case RoleClerk:
		return r == RoleClerk || r == RoleManager
	case RoleManager:
		return r == RoleManager
	}
	return false
}

// ParseRole accepts "clerk" or "manager".
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case RoleClerk, RoleManager:
		return Role(s), nil
	}
	return "", fmt.Errorf("%w: %q (clerk or manager)", ErrBadRole, s)
}

// Sentinel errors.
var (
	// ErrBadName is a token name that is not 1-64 characters of a-z A-Z 0-9 . _ -.
	ErrBadName = errors.New("auth: a token name is 1-64 characters of a-z A-Z 0-9 . _ -")
	// ErrBadRole is a role other than clerk or manager.
	ErrBadRole = errors.New("auth: unknown role")
	// ErrExists is a Create for a name already in use.
	ErrExists = errors.New("auth: a token with this name exists; revoke it first")
	// ErrNotFound is a Revoke for a name not in the store.
	ErrNotFound = errors.New("auth: no token with this name")
	// ErrAdmin is a Revoke of the admin token, which posd would mint again at its next
	// start; replace it by deleting admin.token and restarting posd.
	ErrAdmin = errors.New("auth: the admin token cannot be revoked through the API; delete admin.token in the data directory and restart posd to replace it")
)

// AdminName is the name of the manager token posd makes on first start.
const AdminName = "admin"

// TokenPrefix starts every token, so a leaked one is easy to recognise (and to find
// with a secret scanner).
const TokenPrefix = "wlt_"

// Info describes a token without the token itself.
type Info struct {
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
}

type entry struct {
	Info
	Hash string `json:"sha256"` // hex SHA-256 of the token
}

type file struct {
	Version int     `json:"version"`
	Tokens  []entry `json:"tokens"`
}

// Store is the token file; it is safe for concurrent use.
type Store struct {
	path string

	mu     stdsync.Mutex
	tokens []entry // guarded by mu
}

// Open reads the token file at path; a missing file is an empty store. The file must
// not be readable by group or others.
func Open(path string) (*Store, error) {
	s := &Store{path: path}
	var f file
	found, err := readFile(path, &f, &f.Version)
	if err != nil {
		return nil, err
	}
	if !found {
		return s, nil
	}
	for _, e := range f.Tokens {
		if _, err := hex.DecodeString(e.Hash); err != nil || len(e.Hash) != 64 {
			return nil, fmt.Errorf("auth: %s: token %q has no valid sha256", path, e.Name)
		}
	}
	s.tokens = f.Tokens
	return s, nil
}

// ValidName reports whether name may name a token.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 64 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// Create makes a token named name with role and returns it; this is the only time the
// token itself is seen.
func (s *Store) Create(name string, role Role) (string, Info, error) {
	if !ValidName(name) {
		return "", Info{}, ErrBadName
	}
	if _, err := ParseRole(string(role)); err != nil {
		return "", Info{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.ContainsFunc(s.tokens, func(e entry) bool { return e.Name == name }) {
		return "", Info{}, fmt.Errorf("%w: %q", ErrExists, name)
	}
	return s.add(name, role)
}

// add mints a token; s.mu is held.
func (s *Store) add(name string, role Role) (string, Info, error) {
	tok, err := newToken()
	if err != nil {
		return "", Info{}, err
	}
	info := Info{Name: name, Role: role, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	next := append(slices.Clone(s.tokens), entry{Info: info, Hash: hashHex(tok)})
	if err := s.save(next); err != nil {
		return "", Info{}, err
	}
	s.tokens = next
	return tok, info, nil
}

// Revoke deletes the token named name; requests with it fail from now on. The admin
// token cannot be revoked (ErrAdmin): delete admin.token and restart posd instead.
func (s *Store) Revoke(name string) error {
	if name == AdminName {
		return ErrAdmin
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.tokens, func(e entry) bool { return e.Name == name })
	if i < 0 {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	next := slices.Delete(slices.Clone(s.tokens), i, i+1)
	if err := s.save(next); err != nil {
		return err
	}
	s.tokens = next
	return nil
}

// List returns the tokens' names, roles and creation times, sorted by name.
func (s *Store) List() []Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Info, len(s.tokens))
	for i, e := range s.tokens {
		out[i] = e.Info
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Check returns the token's description when tok is a stored token. The presented
// token's hash is compared with every stored hash in constant time.
func (s *Store) Check(tok string) (Info, bool) {
	sum := sha256.Sum256([]byte(tok))
	s.mu.Lock()
	defer s.mu.Unlock()
	var (
		found Info
		ok    bool
	)
	for _, e := range s.tokens {
		h, _ := hex.DecodeString(e.Hash) // checked by Open and add
		if subtle.ConstantTimeCompare(h, sum[:]) == 1 {
			found, ok = e.Info, true
		}
	}
	return found, ok
}

// EnsureAdmin makes sure a manager token exists for the device's own tools: when the
// file at tokenFile is missing or holds no valid manager token, it mints a manager token named AdminName (replacing
// an earlier one of that name) and writes it there at mode 0600. It returns the admin
// token (read from the file when it exists) and whether it was made now. An existing
// file readable by group or others is refused.
func (s *Store) EnsureAdmin(tokenFile string) (string, bool, error) {
	data, err := secretfile.Read(tokenFile)
	if err == nil {
		// A file whose token the store does not know (tokens.json was lost) is
		// replaced, so the device's own tools keep working.
		tok := strings.TrimSpace(string(data))
		if info, ok := s.Check(tok); ok && info.Role == RoleManager {
			return tok, false, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, fmt.Errorf("auth: admin token: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.IndexFunc(s.tokens, func(e entry) bool { return e.Name == AdminName }); i >= 0 {
		s.tokens = slices.Delete(slices.Clone(s.tokens), i, i+1)
	}
	tok, _, err := s.add(AdminName, RoleManager)
	if err != nil {
		return "", false, err
	}
	if err := secretfile.Write(tokenFile, []byte(tok+"\n")); err != nil {
		return "", false, fmt.Errorf("auth: admin token: %w", err)
	}
	return tok, true, nil
}

func (s *Store) save(tokens []entry) error {
	if tokens == nil {
		tokens = []entry{}
	}
	return writeFile(s.path, file{Version: 1, Tokens: tokens})
}

// readFile reads the versioned JSON file at path (mode 0600 or stricter) into v,
// strictly: unknown fields are refused, and *version must come out 1. A missing file
// is (false, nil).
func readFile(path string, v any, version *int) (bool, error) {
	data, err := secretfile.Read(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("auth: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return false, fmt.Errorf("auth: %s: %w", path, err)
	}
	if *version != 1 {
		return false, fmt.Errorf("auth: %s: version %d, this posd reads version 1", path, *version)
	}
	return true, nil
}

// writeFile writes v as indented JSON to path atomically with mode 0600.
func writeFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if err := secretfile.Write(path, append(data, '\n')); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	return nil
}

func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

func hashHex(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// ReadTokenFile reads a token from a file that only its owner may read (as posctl does
// with admin.token); a file readable by group or others is refused with the chmod to
// run.
func ReadTokenFile(path string) (string, error) {
	data, err := secretfile.Read(path)
	if err != nil {
		return "", fmt.Errorf("auth: token file: %w", err)
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("auth: token file %s is empty", path)
	}
	return tok, nil
}
