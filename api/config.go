package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/walletless/walletless/auth"
)

// ConfigHistory is the fleet configuration as the local API shows and rolls it back.
type ConfigHistory interface {
	// Current returns the configuration in force (secrets redacted) and its version.
	Current() any
	// History returns the last applied documents.
	History() any
	// Rollback puts an applied version's configuration back in force. It may wait
	// for a sale to finish; ErrUnknownVersion when the version is not in the history.
	Rollback(ctx context.Context, version int64) error
}

// ErrUnknownVersion is returned by ConfigHistory.Rollback for a version it does not
// keep.
var ErrUnknownVersion = errors.New("api: version not in the configuration history")

// rollbackWait is how long a rollback request waits for the new configuration before
// it answers 202 (the rollback goes on; posctl config history shows its outcome).
const rollbackWait = 20 * time.Second

// configRoutes are the fleet configuration's endpoints: a manager's.
func (s *Server) configRoutes() []route {
	return []route{
		{"GET /v1/config", auth.RoleManager, s.getConfig},
		{"GET /v1/config/history", auth.RoleManager, s.getConfigHistory},
		{"POST /v1/config/rollback", auth.RoleManager, s.rollbackConfig},
	}
}

func (s *Server) getConfig(w http.ResponseWriter, _ *http.Request) {
	if s.Config == nil {
		writeError(w, http.StatusNotImplemented, "this posd keeps no configuration history")
		return
	}
	writeJSON(w, http.StatusOK, s.Config.Current())
}

func (s *Server) getConfigHistory(w http.ResponseWriter, _ *http.Request) {
	if s.Config == nil {
		writeError(w, http.StatusNotImplemented, "this posd keeps no configuration history")
		return
	}
	writeJSON(w, http.StatusOK, s.Config.History())
}

type rollbackRequest struct {
	Version int64 `json:"version"`
}

func (s *Server) rollbackConfig(w http.ResponseWriter, r *http.Request) {
	if s.Config == nil {
		writeError(w, http.StatusNotImplemented, "this posd keeps no configuration history")
		return
	}
	var req rollbackRequest
	if err := decodeStrict(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Version < 1 {
		writeError(w, http.StatusBadRequest, "version must be 1 or more")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), rollbackWait)
	defer cancel()
	by, _ := identity(r)
	s.log.Info("api: config rollback asked", "version", req.Version, "by", by.Name)
	switch err := s.Config.Rollback(ctx, req.Version); {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]any{"version": req.Version, "status": "applied"})
	case errors.Is(err, ErrUnknownVersion):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, context.DeadlineExceeded) && r.Context().Err() == nil:
		writeJSON(w, http.StatusAccepted, map[string]any{"version": req.Version, "status": "applying (waiting for the counter to be quiet); see posctl config history"})
	default:
		writeError(w, http.StatusConflict, err.Error())
	}
}
