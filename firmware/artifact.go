package firmware

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"aead.dev/minisign"

	"github.com/walletless/walletless/fleet"
)

// Magic is the first line of every artifact (.wlf file).
const Magic = "walletless-firmware 1\n"

// Limits on the parts of an artifact read from outside.
const (
	MaxManifest  = 64 << 10
	MaxSignature = 4 << 10
	MaxPayloads  = 16
	MaxPayload   = 2 << 30
)

// AnyBoard in a manifest's board matches every board.
const AnyBoard = "any"

// Manifest describes an artifact: what it is, what it may replace and what it carries.
// Its exact bytes are what the minisign signature covers.
type Manifest struct {
	V          int       `json:"v"`
	Version    string    `json:"version"`
	MinVersion string    `json:"min_version,omitempty"`
	Arch       string    `json:"arch"`
	Board      string    `json:"board"`
	Created    time.Time `json:"created"`
	Payloads   []Payload `json:"payloads"`
}

// Payload is one file of an artifact, in the order it follows the manifest.
type Payload struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Mode   uint32 `json:"mode"` // permission bits, e.g. 0755
}

// Size is the total of the payload sizes.
func (m Manifest) Size() int64 {
	var n int64
	for _, p := range m.Payloads {
		n += p.Size
	}
	return n
}

func (m Manifest) check() error {
	if m.V != 1 {
		return fmt.Errorf("%w: manifest v is %d, want 1", ErrMalformed, m.V)
	}
	if _, err := ParseVersion(m.Version); err != nil {
		return err
	}
	if m.MinVersion != "" {
		if _, err := ParseVersion(m.MinVersion); err != nil {
			return err
		}
		if CompareVersions(m.MinVersion, m.Version) > 0 {
			return fmt.Errorf("%w: min_version %s is above version %s", ErrMalformed, m.MinVersion, m.Version)
		}
	}
	if !validName(m.Arch) || !validName(m.Board) {
		return fmt.Errorf("%w: arch and board must be 1-64 characters of a-z A-Z 0-9 . _ -", ErrMalformed)
	}
	if len(m.Payloads) == 0 || len(m.Payloads) > MaxPayloads {
		return fmt.Errorf("%w: %d payloads, want 1 to %d", ErrMalformed, len(m.Payloads), MaxPayloads)
	}
	seen := map[string]bool{}
	for _, p := range m.Payloads {
		if !validName(p.Name) || p.Name == "." || p.Name == ".." || seen[p.Name] {
			return fmt.Errorf("%w: payload name %q must be a unique plain file name", ErrMalformed, p.Name)
		}
		seen[p.Name] = true
		if p.Size < 0 || p.Size > MaxPayload {
			return fmt.Errorf("%w: payload %s has size %d", ErrMalformed, p.Name, p.Size)
		}
		if b, err := hex.DecodeString(p.SHA256); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("%w: payload %s: sha256 is not 64 hex digits", ErrMalformed, p.Name)
		}
		if p.Mode&^0o777 != 0 {
			return fmt.Errorf("%w: payload %s: mode %o has more than permission bits", ErrMalformed, p.Name, p.Mode)
		}
	}
	return nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// ParseManifest reads a manifest strictly (unknown fields and trailing data are errors)
// and checks its shape. It does not check a signature.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	if len(b) > MaxManifest {
		return m, fmt.Errorf("%w: manifest is %d bytes, at most %d", ErrMalformed, len(b), MaxManifest)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: manifest: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Manifest{}, fmt.Errorf("%w: manifest: trailing data", ErrMalformed)
	}
	if err := m.check(); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

// PackFile is one file to pack: its name in the artifact and its path on disk.
type PackFile struct {
	Name string
	Path string
}

// Pack writes an artifact to w: the manifest m (its Payloads are filled from files)
// signed with key, then the files. It reads each file twice (hash, then copy) and
// fails if one changed in between.
func Pack(w io.Writer, key minisign.PrivateKey, m Manifest, files []PackFile) (Manifest, error) {
	m.V = 1
	m.Payloads = nil
	if m.Created.IsZero() {
		m.Created = time.Now().UTC().Truncate(time.Second)
	}
	for _, f := range files {
		fh, err := os.Open(f.Path)
		if err != nil {
			return m, fmt.Errorf("firmware: pack: %w", err)
		}
		st, err := fh.Stat()
		if err != nil {
			fh.Close()
			return m, fmt.Errorf("firmware: pack: %w", err)
		}
		h := sha256.New()
		n, err := io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return m, fmt.Errorf("firmware: pack %s: %w", f.Path, err)
		}
		m.Payloads = append(m.Payloads, Payload{Name: f.Name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), Mode: uint32(st.Mode().Perm())})
	}
	if err := m.check(); err != nil {
		return m, err
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, fmt.Errorf("firmware: pack: %w", err)
	}
	mb = append(mb, '\n')
	trusted := fmt.Sprintf("walletless firmware %s for %s/%s", m.Version, m.Arch, m.Board)
	sig := minisign.SignWithComments(key, mb, trusted, "signature from walletless key "+fleet.KeyID(key.ID()))
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%smanifest %d\n", Magic, len(mb))
	bw.Write(mb)
	fmt.Fprintf(bw, "signature %d\n", len(sig))
	bw.Write(sig)
	for i, f := range files {
		fh, err := os.Open(f.Path)
		if err != nil {
			return m, fmt.Errorf("firmware: pack: %w", err)
		}
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(bw, h), fh)
		fh.Close()
		if err != nil {
			return m, fmt.Errorf("firmware: pack %s: %w", f.Path, err)
		}
		if n != m.Payloads[i].Size || hex.EncodeToString(h.Sum(nil)) != m.Payloads[i].SHA256 {
			return m, fmt.Errorf("firmware: pack: %s changed while it was packed", f.Path)
		}
	}
	if err := bw.Flush(); err != nil {
		return m, fmt.Errorf("firmware: pack: %w", err)
	}
	return m, nil
}

// Header is the verified head of an artifact.
type Header struct {
	Manifest Manifest
	// ManifestSHA256 is the hex SHA-256 of the signed manifest bytes: what a job names.
	ManifestSHA256 string
	KeyID          string // the minisign key that signed it
}

// Target is what a device is and what it will accept.
type Target struct {
	Arch  string // runtime.GOARCH of the device
	Board string // the configured board name
	Floor string // the highest min_version committed; "" for none
}

// Accept checks a verified manifest against the device: ErrDowngrade when its version
// is below the floor, ErrArch or ErrBoard when it is for another device.
func (t Target) Accept(m Manifest) error {
	if t.Floor != "" && CompareVersions(m.Version, t.Floor) < 0 {
		return fmt.Errorf("%w: version %s is below the floor %s", ErrDowngrade, m.Version, t.Floor)
	}
	if m.Arch != t.Arch {
		return fmt.Errorf("%w: %s, this device is %s", ErrArch, m.Arch, t.Arch)
	}
	if m.Board != AnyBoard && m.Board != t.Board {
		return fmt.Errorf("%w: %s, this device is %s", ErrBoard, m.Board, t.Board)
	}
	return nil
}

// ReadHeader reads the magic line, the manifest and its signature from r, verifies
// the signature against keys and checks the manifest's shape. On success r is
// positioned at the first payload. Nothing of the artifact is trusted before this
// returns nil.
func ReadHeader(r *bufio.Reader, keys []minisign.PublicKey) (Header, error) {
	if len(keys) == 0 {
		return Header{}, ErrNoKeys
	}
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(r, magic); err != nil {
		return Header{}, short(err, "magic")
	}
	if string(magic) != Magic {
		return Header{}, fmt.Errorf("%w: not a walletless firmware file", ErrMalformed)
	}
	mb, err := section(r, "manifest", MaxManifest)
	if err != nil {
		return Header{}, err
	}
	sig, err := section(r, "signature", MaxSignature)
	if err != nil {
		return Header{}, err
	}
	id, err := fleet.Verify(keys, mb, sig)
	switch {
	case errors.Is(err, fleet.ErrUntrustedKey):
		return Header{}, fmt.Errorf("%w: %w", ErrUntrustedKey, err)
	case err != nil:
		return Header{}, fmt.Errorf("%w: %w", ErrSignature, err)
	}
	m, err := ParseManifest(mb)
	if err != nil {
		return Header{}, err
	}
	sum := sha256.Sum256(mb)
	return Header{Manifest: m, ManifestSHA256: hex.EncodeToString(sum[:]), KeyID: id}, nil
}

func short(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: ends in the %s", ErrTruncated, what)
	}
	return fmt.Errorf("firmware: reading the %s: %w", what, err)
}

// section reads "NAME LEN\n" and LEN bytes.
func section(r *bufio.Reader, name string, max int) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: %s line too long", ErrMalformed, name)
		}
		return nil, short(err, name+" line")
	}
	rest, ok := strings.CutPrefix(string(line), name+" ")
	if !ok {
		return nil, fmt.Errorf("%w: expected the %s section", ErrMalformed, name)
	}
	n, err := strconv.Atoi(strings.TrimSuffix(rest, "\n"))
	if err != nil || n <= 0 || n > max {
		return nil, fmt.Errorf("%w: %s length %q is not 1 to %d", ErrMalformed, name, strings.TrimSpace(rest), max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, short(err, name)
	}
	return b, nil
}

// Extract reads the payloads that follow a verified header from r into a new
// directory dir (which must not exist) and checks that nothing follows them. Each
// payload is hashed while it is written to a temporary file in dir and renamed to its
// name only after its size and hash match; dir is removed on any error, so a caller
// that renames dir into place after Extract returns nil never exposes an unverified
// byte. progress, if set, is called with the bytes written so far.
func Extract(r io.Reader, h Header, dir string, progress func(done, total int64)) (err error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("firmware: staging: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	total, done := h.Manifest.Size(), int64(0)
	for _, p := range h.Manifest.Payloads {
		tmp, err := os.CreateTemp(dir, ".part-*")
		if err != nil {
			return fmt.Errorf("firmware: staging: %w", err)
		}
		sum := sha256.New()
		n, err := io.Copy(io.MultiWriter(tmp, sum, progressWriter(func(k int64) {
			done += k
			if progress != nil {
				progress(done, total)
			}
		})), io.LimitReader(r, p.Size))
		if err == nil && n < p.Size {
			err = fmt.Errorf("%w: payload %s has %d of %d bytes", ErrTruncated, p.Name, n, p.Size)
		}
		if err == nil && hex.EncodeToString(sum.Sum(nil)) != p.SHA256 {
			err = fmt.Errorf("%w: %s", ErrPayloadHash, p.Name)
		}
		if err == nil {
			err = tmp.Chmod(os.FileMode(p.Mode))
		}
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), filepath.Join(dir, p.Name))
		}
		if err != nil {
			os.Remove(tmp.Name())
			return err
		}
	}
	var one [1]byte
	if n, _ := io.ReadFull(r, one[:]); n != 0 {
		return fmt.Errorf("%w: data after the last payload", ErrMalformed)
	}
	return syncDir(dir)
}

type progressWriter func(int64)

func (p progressWriter) Write(b []byte) (int, error) { p(int64(len(b))); return len(b), nil }

// Verify reads a whole artifact file, checks its signature, its fit for t and every
// payload hash without writing anything, and returns its header.
func Verify(path string, keys []minisign.PublicKey, t Target) (Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return Header{}, fmt.Errorf("firmware: %w", err)
	}
	defer f.Close()
	br := bufio.NewReader(f)
	h, err := ReadHeader(br, keys)
	if err != nil {
		return h, err
	}
	if err := t.Accept(h.Manifest); err != nil {
		return h, err
	}
	for _, p := range h.Manifest.Payloads {
		sum := sha256.New()
		n, err := io.Copy(sum, io.LimitReader(br, p.Size))
		if err != nil {
			return h, fmt.Errorf("firmware: %w", err)
		}
		if n < p.Size {
			return h, fmt.Errorf("%w: payload %s has %d of %d bytes", ErrTruncated, p.Name, n, p.Size)
		}
		if hex.EncodeToString(sum.Sum(nil)) != p.SHA256 {
			return h, fmt.Errorf("%w: %s", ErrPayloadHash, p.Name)
		}
	}
	if _, err := br.ReadByte(); err == nil {
		return h, fmt.Errorf("%w: data after the last payload", ErrMalformed)
	}
	return h, nil
}

// syncDir fsyncs a directory so a rename in it survives a power cut.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("firmware: sync %s: %w", dir, err)
	}
	return nil
}

// writeFileAtomic writes data to path by a temporary file, fsync and rename, then
// fsyncs the directory.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(mode)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("firmware: write %s: %w", path, err)
	}
	return syncDir(dir)
}
