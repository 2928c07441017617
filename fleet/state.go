package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/walletless/walletless/internal/secretfile"
)

// HistorySize is how many applied documents a device keeps for rollback.
const HistorySize = 10

// Held is a signed document as received.
type Held struct {
	Version   int64  `json:"version"`
	Document  []byte `json:"document"`
	Signature string `json:"signature"`
}

// Entry is one applied document in the history.
type Entry struct {
	Version   int64     `json:"version"`
	Slot      string    `json:"slot"` // the slot its document came on
	AppliedAt time.Time `json:"applied_at"`
	// Layer is what the fleet adds to the config file at this version: the held
	// documents' config merged all, then groups, then device. Effective is the
	// configuration that was in force (file ⊕ Layer), with secrets redacted.
	Layer     json.RawMessage `json:"layer"`
	Effective json.RawMessage `json:"effective,omitempty"`
	Source    Held            `json:"source"` // the document that made this version
	Slots     map[string]Held `json:"slots"`  // every document held at that time, by slot
}

// State is what an Agent persists.
type State struct {
	// Current is the highest version accepted: only a higher one is accepted next.
	Current int64 `json:"current"`
	// Applied is the version whose configuration is in force (lower than Current after
	// a rollback or a failed apply).
	Applied int64           `json:"applied"`
	Layer   json.RawMessage `json:"layer,omitempty"` // in force: file ⊕ Layer
	Slots   map[string]Held `json:"slots,omitempty"` // documents held, by slot
	// Seen is the SHA-256 of the last document whose version was used up on each slot
	// (applied, or failed and rolled back): its retained redelivery is a silent no-op.
	Seen    map[string]string `json:"seen,omitempty"`
	History []Entry           `json:"history,omitempty"` // oldest first, at most HistorySize
	Last    *Report           `json:"last_report,omitempty"`
}

func (s *State) clone() State {
	b, _ := json.Marshal(s)
	var c State
	_ = json.Unmarshal(b, &c)
	return c
}

// LoadState reads the state file at path; a missing file is the empty state.
func LoadState(path string) (State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("fleet: state: %w", err)
	}
	var s State
	if err := strictDecode(b, &s); err != nil {
		return State{}, fmt.Errorf("fleet: state %s is damaged (%w); move it away to start from the config file alone", path, err)
	}
	return s, nil
}

// SaveState writes s to path atomically (temporary file, fsync, rename, fsync of the
// directory), mode 0600.
func SaveState(path string, s State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("fleet: state: %w", err)
	}
	if err := secretfile.Write(path, b); err != nil {
		return fmt.Errorf("fleet: state: %w", err)
	}
	return nil
}

func digest(doc []byte, sig string) string {
	h := sha256.New()
	h.Write(doc)
	h.Write([]byte{0})
	h.Write([]byte(sig))
	return hex.EncodeToString(h.Sum(nil))
}

func slotKey(s Slot) string {
	switch s.Kind {
	case SlotAll:
		return "all"
	case SlotGroup:
		return "groups/" + s.Name
	default:
		return "devices/" + s.Name
	}
}
