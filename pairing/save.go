package pairing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/walletless/walletless/internal/secretfile"
)

// Files under the data directory. StateFile is written last: a pairing is in force
// only once it exists, so an interrupted pairing leaves the terminal unpaired.
const (
	StateFile = "pairing.json"
	CertFile  = "device.crt"
	KeyFile   = "device.key"
	CAFile    = "ca.crt"
	// UsedFile records the nonces of the pairing QRs this terminal used; it survives
	// a reset so an old QR stays refused.
	UsedFile = "pairing-used.json"
)

// State is the pairing result saved on the device (DATA/pairing.json): what posd
// loads over the packaged configuration at start. It holds no secret.
type State struct {
	V               int       `json:"v"`
	DeviceID        string    `json:"device_id"`
	Broker          string    `json:"broker"`
	Groups          []string  `json:"groups,omitempty"`
	MerchantEMVQR   string    `json:"merchant_emv_qr,omitempty"`
	EnrollURL       string    `json:"enroll_url"`
	CAFingerprint   string    `json:"ca_fingerprint"`
	CertFingerprint string    `json:"cert_fingerprint"` // SHA-256 of the device certificate, hex
	CertNotAfter    time.Time `json:"cert_not_after"`
	Nonce           string    `json:"nonce"`
	PairedAt        time.Time `json:"paired_at"`
	// CertFile, KeyFile and CAFile are the saved files (absolute paths).
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	CAFile   string `json:"ca_file"`
}

// Load reads the pairing saved under dir; ok is false when the terminal is not paired.
func Load(dir string) (State, bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, false, nil
	}
	if err != nil {
		return State{}, false, fmt.Errorf("pairing: %w", err)
	}
	var s State
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return State{}, false, fmt.Errorf("pairing: %s: %w", StateFile, err)
	}
	if s.V != Version || !validID(s.DeviceID) || s.Broker == "" {
		return State{}, false, fmt.Errorf("pairing: %s is not a pairing this posd reads", filepath.Join(dir, StateFile))
	}
	for _, f := range []string{s.CertFile, s.KeyFile, s.CAFile} {
		if err := secretfile.Check(f); err != nil {
			return State{}, false, fmt.Errorf("pairing: %w", err)
		}
	}
	return s, true, nil
}

// Used reports whether this terminal used the pairing QR with nonce before.
func Used(dir, nonce string) (bool, error) {
	used, err := readUsed(dir)
	if err != nil {
		return false, err
	}
	return slices.Contains(used, nonce), nil
}

func readUsed(dir string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, UsedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pairing: %w", err)
	}
	var used []string
	if err := json.Unmarshal(b, &used); err != nil {
		return nil, fmt.Errorf("pairing: %s: %w", UsedFile, err)
	}
	return used, nil
}

// Save writes an enrollment's files and the pairing state under dir: the key,
// certificate and CA at mode 0600, atomically each, the QR's nonce to the used
// record, and StateFile last. On an error it removes what it wrote, so the terminal
// stays unpaired with nothing half-written.
func Save(dir string, p Payload, e *Enrolled, now time.Time) (st State, err error) {
	st = State{
		V: Version, DeviceID: p.DeviceID, Broker: p.Broker, Groups: p.Groups, MerchantEMVQR: p.MerchantEMVQR,
		EnrollURL: p.EnrollURL, CAFingerprint: p.CAFingerprint, CertFingerprint: FingerprintHex(e.Cert.Raw),
		CertNotAfter: e.Cert.NotAfter.UTC(), Nonce: p.Nonce, PairedAt: now.UTC(),
		CertFile: filepath.Join(dir, CertFile), KeyFile: filepath.Join(dir, KeyFile), CAFile: filepath.Join(dir, CAFile),
	}
	var written []string
	defer func() {
		if err != nil {
			for _, f := range written {
				_ = os.Remove(f)
			}
		}
	}()
	write := func(path string, data []byte) error {
		if err := secretfile.Write(path, data); err != nil {
			return fmt.Errorf("pairing: save: %w", err)
		}
		written = append(written, path)
		return nil
	}
	if err := write(st.KeyFile, e.KeyPEM); err != nil {
		return State{}, err
	}
	if err := write(st.CertFile, e.CertPEM); err != nil {
		return State{}, err
	}
	if err := write(st.CAFile, e.CAPEM); err != nil {
		return State{}, err
	}
	used, err := readUsed(dir)
	if err != nil {
		return State{}, err
	}
	if !slices.Contains(used, p.Nonce) {
		used = append(used, p.Nonce)
	}
	ub, _ := json.Marshal(used)
	// The used record is not removed on a later error: the signer has marked the
	// secret used, so the QR cannot pair again anyway.
	if err := secretfile.Write(filepath.Join(dir, UsedFile), ub); err != nil {
		return State{}, fmt.Errorf("pairing: save: %w", err)
	}
	sb, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return State{}, fmt.Errorf("pairing: %w", err)
	}
	if err := write(filepath.Join(dir, StateFile), append(sb, '\n')); err != nil {
		return State{}, err
	}
	return st, nil
}

// Reset removes a saved pairing (a technician's reset; posd must be stopped). The
// used-nonce record stays, so an old pairing QR is still refused.
func Reset(dir string) error {
	var errs []error
	for _, f := range []string{StateFile, CertFile, KeyFile, CAFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("pairing: reset: %w", err))
		}
	}
	return errors.Join(errs...)
}
