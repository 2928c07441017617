package api

import (
	"net/http"

	"github.com/walletless/walletless/auth"
)

// metricsRoute is GET /metrics: Prometheus's text format, for manager tokens only
// (a scrape job sends "Authorization: Bearer TOKEN").
func (s *Server) metricsRoute() route {
	return route{"GET /metrics", auth.RoleManager, func(w http.ResponseWriter, r *http.Request) {
		if s.Metrics == nil {
			writeError(w, http.StatusNotFound, "api: metrics are not served")
			return
		}
		s.Metrics.ServeHTTP(w, r)
	}}
}
