package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/walletless/walletless/auth"
	"github.com/walletless/walletless/firmware"
)

// FirmwareUpdates is the firmware update agent as the local API drives it.
type FirmwareUpdates interface {
	// Status returns the firmware state (slots, versions, the update in progress).
	Status() any
	// Flash reads an artifact from body, verifies it and, unless checkOnly, queues
	// its install. It returns what will change.
	Flash(ctx context.Context, body io.Reader, checkOnly bool) (any, error)
	// Rollback abandons the update on trial and restarts posd on the previous slot.
	Rollback(ctx context.Context) error
}

// ErrUpdating refuses a new sale while a firmware update installs, switches or is
// on trial; the API answers 503 with Retry-After.
var ErrUpdating = errors.New("api: a firmware update is in progress; new sales resume when it is done")

// MaxFirmwareUpload bounds an uploaded artifact.
const MaxFirmwareUpload = 1 << 30

// firmwareRoutes are the firmware endpoints: a manager's (a technician's token).
func (s *Server) firmwareRoutes() []route {
	return []route{
		{"GET /v1/firmware", auth.RoleManager, s.getFirmware},
		{"POST /v1/firmware", auth.RoleManager, s.flashFirmware},
		{"POST /v1/firmware/rollback", auth.RoleManager, s.rollbackFirmware},
	}
}

func (s *Server) getFirmware(w http.ResponseWriter, _ *http.Request) {
	if s.Firmware == nil {
		writeError(w, http.StatusNotImplemented, "firmware updates are off on this terminal (firmware.slots_dir is not set)")
		return
	}
	writeJSON(w, http.StatusOK, s.Firmware.Status())
}

// flashFirmware takes the artifact as the request body (Content-Type
// application/octet-stream); ?check=1 only verifies it and says what would change.
func (s *Server) flashFirmware(w http.ResponseWriter, r *http.Request) {
	if s.Firmware == nil {
		writeError(w, http.StatusNotImplemented, "firmware updates are off on this terminal (firmware.slots_dir is not set)")
		return
	}
	// An artifact takes longer to send than a JSON request.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(15 * time.Minute))
	body := http.MaxBytesReader(w, r.Body, MaxFirmwareUpload)
	res, err := s.Firmware.Flash(r.Context(), body, r.URL.Query().Get("check") == "1")
	var tooBig *http.MaxBytesError
	switch {
	case err == nil && r.URL.Query().Get("check") == "1":
		writeJSON(w, http.StatusOK, res)
	case err == nil:
		writeJSON(w, http.StatusAccepted, res)
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "api: the artifact is larger than 1 GiB")
	case firmware.Rejection(err):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, firmware.ErrBusy):
		writeError(w, http.StatusConflict, err.Error())
	default:
		s.log.Error("firmware flash failed", "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

func (s *Server) rollbackFirmware(w http.ResponseWriter, r *http.Request) {
	if s.Firmware == nil {
		writeError(w, http.StatusNotImplemented, "firmware updates are off on this terminal (firmware.slots_dir is not set)")
		return
	}
	if err := s.Firmware.Rollback(r.Context()); err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"status": "rolling back; posd restarts on the previous slot"})
}
