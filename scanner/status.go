package scanner

import (
	"sync"
	"time"
)

// State is a snapshot of a scanner's health, for the local API and posctl.
type State struct {
	Source      string    `json:"source"`         // Config.Source
	Port        string    `json:"port,omitempty"` // the device path in use or last used
	Connected   bool      `json:"connected"`
	Since       time.Time `json:"since,omitzero"` // when Connected last changed
	LastScan    time.Time `json:"last_scan,omitzero"`
	LastError   string    `json:"last_error,omitempty"` // never holds a code
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Scans       uint64    `json:"scans"`      // scans delivered
	Duplicates  uint64    `json:"duplicates"` // reads suppressed by Config.Dedup
	Dropped     uint64    `json:"dropped"`    // frames rejected: oversize, not UTF-8, control bytes
}

// Status holds the State of one running scanner. Run updates it; any goroutine may
// read it with State. The zero Status is ready to use.
type Status struct {
	mu sync.Mutex
	s  State // guarded by mu
}

// State returns a copy of the current state.
func (st *Status) State() State {
	if st == nil {
		return State{}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.s
}

func (st *Status) update(f func(s *State)) {
	st.mu.Lock()
	f(&st.s)
	st.mu.Unlock()
}

func (st *Status) setError(err error, at time.Time) {
	st.update(func(s *State) {
		s.LastError, s.LastErrorAt = err.Error(), at
	})
}

func (st *Status) setConnected(port string, on bool, at time.Time) {
	st.update(func(s *State) {
		if s.Connected != on || s.Since.IsZero() {
			s.Since = at
		}
		s.Connected = on
		if port != "" {
			s.Port = port
		}
	})
}
