package printer

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/walletless/walletless/printer/escpos"
)

// Status is a printer's real-time status, as answered to DLE EOT 1, 2 and 4.
type Status struct {
	Offline      bool // the printer is offline (any cause)
	CoverOpen    bool
	PaperOut     bool // paper end: printing stopped
	PaperNearEnd bool // paper low: still printing
	Error        bool // cutter jam, head overheat, unrecoverable error
}

// Ready reports whether a job can print now.
func (s Status) Ready() bool { return !s.Offline && !s.CoverOpen && !s.PaperOut && !s.Error }

func (s Status) String() string {
	var parts []string
	if s.Offline {
		parts = append(parts, "offline")
	}
	if s.CoverOpen {
		parts = append(parts, "cover open")
	}
	if s.PaperOut {
		parts = append(parts, "paper out")
	}
	if s.PaperNearEnd {
		parts = append(parts, "paper near end")
	}
	if s.Error {
		parts = append(parts, "error")
	}
	if len(parts) == 0 {
		return "ready"
	}
	return strings.Join(parts, ", ")
}

// StatusError is the ErrNotReady a printer returns with the status it reported.
type StatusError struct {
	Status Status
	When   string // "before printing" or "after printing"
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("printer: not ready %s: %s", e.When, e.Status)
}

func (e *StatusError) Unwrap() error { return ErrNotReady }

// statusQueries are DLE EOT 1 (printer), 2 (offline cause) and 4 (paper sensor).
var statusQueries = [3]byte{1, 2, 4}

// statusConn is a two-way transport a status query runs over.
type statusConn interface {
	Write(p []byte) (int, error)
	// readByte reads one byte, waiting until the deadline.
	readByte(deadline time.Time) (byte, error)
}

// errNoAnswer: the printer did not answer a DLE EOT in time.
var errNoAnswer = errors.New("printer: no answer to DLE EOT")

// queryStatus asks DLE EOT 1, 2 and 4 and decodes the answers. Bytes that do not have
// the fixed bits of a status byte (0xx1xx10) are skipped, so stray Automatic Status
// Back messages do not confuse it.
func queryStatus(c statusConn, timeout time.Duration) (Status, error) {
	var ans [3]byte
	deadline := time.Now().Add(timeout)
	for i, n := range statusQueries {
		if err := writeFull(c, []byte{escpos.DLE, escpos.EOT, n}); err != nil {
			return Status{}, fmt.Errorf("printer: status query: %w", err)
		}
		for {
			b, err := c.readByte(deadline)
			if err != nil {
				return Status{}, fmt.Errorf("%w (DLE EOT %d): %w", errNoAnswer, n, err)
			}
			if b&0x93 == 0x12 {
				ans[i] = b
				break
			}
		}
	}
	return decodeStatus(ans[0], ans[1], ans[2]), nil
}

func decodeStatus(printer, cause, paper byte) Status {
	return Status{
		Offline:      printer&0x08 != 0,
		CoverOpen:    cause&0x04 != 0,
		PaperOut:     cause&0x20 != 0 || paper&0x60 != 0,
		PaperNearEnd: paper&0x0c != 0,
		Error:        cause&0x40 != 0,
	}
}

// EncodeStatus returns the answers a printer in status s gives to DLE EOT 1, 2 and 4;
// printer simulators in tests use it.
func EncodeStatus(s Status) (printer, cause, paper byte) {
	printer, cause, paper = 0x12, 0x12, 0x12
	if !s.Ready() {
		printer |= 0x08
	}
	if s.CoverOpen {
		cause |= 0x04
	}
	if s.PaperOut {
		cause |= 0x20
		paper |= 0x60
	}
	if s.Error {
		cause |= 0x40
	}
	if s.PaperNearEnd {
		paper |= 0x0c
	}
	return printer, cause, paper
}

// gsrPaper is GS r 1: transmit the paper sensor status. Unlike DLE EOT it is not a
// real-time command: the printer answers it in order, after it has processed (printed)
// everything sent before it, so its answer confirms the receipt came out.
var gsrPaper = []byte{escpos.GS, 'r', 1}

// confirmPrinted runs after a job's bytes were written. With useGSr it sends GS r 1
// and waits up to printWait for the in-order answer; a printer that stopped (paper
// end in the middle of the receipt) does not answer, and DLE EOT then says why. A
// printer that answers DLE EOT as ready but never GS r does not implement GS r:
// useGSr is cleared and later jobs are confirmed by DLE EOT alone.
func confirmPrinted(c statusConn, useGSr *atomic.Bool, printWait, statusWait time.Duration) (Status, error) {
	if useGSr.Load() {
		if err := writeFull(c, gsrPaper); err != nil {
			return Status{}, fmt.Errorf("printer: status query: %w", err)
		}
		deadline := time.Now().Add(printWait)
		for {
			b, err := c.readByte(deadline)
			if err != nil {
				break // no in-order answer: ask in real time below
			}
			if b&0x90 == 0 { // GS r answers have bits 4 and 7 clear; DLE EOT's bit 4 set
				return Status{PaperNearEnd: b&0x03 != 0, PaperOut: b&0x0c != 0}, nil
			}
		}
	}
	st, err := queryStatus(c, statusWait)
	if err == nil && st.Ready() && useGSr.Load() {
		useGSr.Store(false)
	}
	return st, err
}
