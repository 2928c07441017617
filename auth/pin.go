package auth

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"
	stdsync "sync"
	"time"
)

// PIN rules: 4 to 12 digits.
const (
	MinPIN = 4
	MaxPIN = 12
	// pinIter is the PBKDF2-SHA-256 work factor: a PIN has little entropy, so the
	// hash is slow (about 50 ms on a Pi 4) and sign-in failures slow the caller down
	// (the API's per-address limiter).
	pinIter = 60000
)

// ErrBadPIN is a PIN that is not 4-12 ASCII digits.
var ErrBadPIN = errors.New("auth: a PIN is 4 to 12 digits")

type pinEntry struct {
	Info
	Salt []byte `json:"salt"`
	Hash []byte `json:"pbkdf2_sha256"`
	Iter int    `json:"iter"`
}

type pinFile struct {
	Version int        `json:"version"`
	PINs    []pinEntry `json:"pins"`
}

// PINs are the clerks' sign-in PINs for the counter page: a name, a role and a salted
// PBKDF2-SHA-256 of the PIN, in one JSON file (mode 0600). Safe for concurrent use.
type PINs struct {
	path string

	mu   stdsync.Mutex
	pins []pinEntry // guarded by mu
}

// OpenPINs reads the PIN file at path; a missing file is an empty store.
func OpenPINs(path string) (*PINs, error) {
	p := &PINs{path: path}
	var f pinFile
	found, err := readFile(path, &f, &f.Version)
	if err != nil {
		return nil, err
	}
	if !found {
		return p, nil
	}
	for _, e := range f.PINs {
		if len(e.Hash) != 32 || len(e.Salt) < 16 || e.Iter < 1000 {
			return nil, fmt.Errorf("auth: %s: PIN of %q is damaged", path, e.Name)
		}
	}
	p.pins = f.PINs
	return p, nil
}

// ValidPIN reports whether pin may be a PIN.
func ValidPIN(pin string) bool {
	if len(pin) < MinPIN || len(pin) > MaxPIN {
		return false
	}
	for _, r := range pin {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// Set gives name a PIN with role, replacing an earlier PIN of that name.
func (p *PINs) Set(name string, role Role, pin string) (Info, error) {
	if !ValidName(name) {
		return Info{}, ErrBadName
	}
	if _, err := ParseRole(string(role)); err != nil {
		return Info{}, err
	}
	if !ValidPIN(pin) {
		return Info{}, ErrBadPIN
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return Info{}, fmt.Errorf("auth: %w", err)
	}
	hash, err := pbkdf2.Key(sha256.New, pin, salt, pinIter, 32)
	if err != nil {
		return Info{}, fmt.Errorf("auth: %w", err)
	}
	info := Info{Name: name, Role: role, CreatedAt: time.Now().UTC().Truncate(time.Second)}
	p.mu.Lock()
	defer p.mu.Unlock()
	next := slices.DeleteFunc(slices.Clone(p.pins), func(e pinEntry) bool { return e.Name == name })
	next = append(next, pinEntry{Info: info, Salt: salt, Hash: hash, Iter: pinIter})
	if err := p.save(next); err != nil {
		return Info{}, err
	}
	p.pins = next
	return info, nil
}

// Remove deletes name's PIN.
func (p *PINs) Remove(name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := slices.IndexFunc(p.pins, func(e pinEntry) bool { return e.Name == name })
	if i < 0 {
		return fmt.Errorf("%w: %q", ErrNotFound, name)
	}
	next := slices.Delete(slices.Clone(p.pins), i, i+1)
	if err := p.save(next); err != nil {
		return err
	}
	p.pins = next
	return nil
}

// List returns the names and roles that have a PIN, sorted by name.
func (p *PINs) List() []Info {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Info, len(p.pins))
	for i, e := range p.pins {
		out[i] = e.Info
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Check returns name's identity when pin is its PIN. An unknown name costs the same
// hash as a known one.
func (p *PINs) Check(name, pin string) (Info, bool) {
	p.mu.Lock()
	var e pinEntry
	i := slices.IndexFunc(p.pins, func(x pinEntry) bool { return x.Name == name })
	if i >= 0 {
		e = p.pins[i]
	}
	p.mu.Unlock()
	salt, iter, want := e.Salt, e.Iter, e.Hash
	if i < 0 {
		salt, iter, want = make([]byte, 16), pinIter, make([]byte, 32)
	}
	got, err := pbkdf2.Key(sha256.New, pin, salt, iter, 32)
	if err != nil || subtle.ConstantTimeCompare(got, want) != 1 || i < 0 || !ValidPIN(pin) {
		return Info{}, false
	}
	return e.Info, true
}

func (p *PINs) save(pins []pinEntry) error {
	if pins == nil {
		pins = []pinEntry{}
	}
	return writeFile(p.path, pinFile{Version: 1, PINs: pins})
}
