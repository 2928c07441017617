package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	stdsync "sync"
	"time"

	"github.com/walletless/walletless/auth"
	"github.com/walletless/walletless/payment"
)

// Event kinds sent on GET /v1/events.
const (
	EventSale   = "sale"   // a sale changed: the data is the sale
	EventRefund = "refund" // a refund was made: the data is the refund
	EventBatch  = "batch"  // the batch was closed: the data is the closed batch
	EventStatus = "status" // the terminal's status changed (link, queue, refused scan)
)

// subscriberBuffer is how many events a slow subscriber may fall behind before it is
// disconnected (its EventSource reconnects and starts from a fresh status).
const subscriberBuffer = 64

// keepAlive is how often an idle event stream sends a comment line, so proxies and
// the browser see the connection is alive.
const keepAlive = 15 * time.Second

// event is one Server-Sent Event.
type event struct {
	kind string
	data []byte
}

// hub fans events out to the open event streams.
type hub struct {
	mu   stdsync.Mutex
	subs map[chan event]struct{} // guarded by mu
	seen map[string]payment.Status
	// lastStatus is the last status sent, to send only changes.
	lastStatus []byte // guarded by mu
}

func newHub() *hub { return &hub{subs: map[chan event]struct{}{}, seen: map[string]payment.Status{}} }

func (h *hub) subscribe() (chan event, func()) {
	c := make(chan event, subscriberBuffer)
	h.mu.Lock()
	h.subs[c] = struct{}{}
	h.mu.Unlock()
	return c, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := h.subs[c]; ok {
			delete(h.subs, c)
			close(c)
		}
	}
}

// closeAll ends every open stream; their EventSources reconnect, to whichever server
// then serves (a new one after a pushed configuration).
func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs {
		delete(h.subs, c)
		close(c)
	}
}

// publish sends an event to every subscriber without blocking; a subscriber whose
// buffer is full is dropped (its stream ends and the client reconnects).
func (h *hub) publish(kind string, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs {
		select {
		case c <- event{kind: kind, data: data}:
		default:
			delete(h.subs, c)
			close(c)
		}
	}
}

// PublishSale tells every event stream about a sale's state; the daemon calls it from
// the engine's Finished and Presented callbacks. Safe for concurrent use; never
// blocks.
func (s *Server) PublishSale(sale payment.Sale) {
	s.events.mu.Lock()
	if sale.Status.Final() {
		delete(s.events.seen, sale.ID)
	} else {
		s.events.seen[sale.ID] = sale.Status
	}
	s.events.mu.Unlock()
	s.events.publish(EventSale, sale)
}

// Watch pushes the changes the engine does not announce itself until ctx is done (then
// it ends every open stream): the
// terminal's status (cloud link, queue depth, a refused scan) and every sale that is
// not final yet (authorizing → in doubt → reversed, …). It reads them on the server
// every interval; the clients never poll.
func (s *Server) Watch(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	// This server's sale path ends with ctx: its streams end too, and the clients
	// reconnect to the next one.
	defer s.events.closeAll()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		s.events.mu.Lock()
		listeners := len(s.events.subs)
		s.events.mu.Unlock()
		if listeners > 0 { // a new stream starts with a fresh status anyway
			s.pushStatus()
		}
		s.events.mu.Lock()
		open := make(map[string]payment.Status, len(s.events.seen))
		for id, st := range s.events.seen {
			open[id] = st
		}
		s.events.mu.Unlock()
		for id, st := range open {
			sale, err := s.sales.Get(id)
			if err != nil {
				s.events.mu.Lock()
				delete(s.events.seen, id)
				s.events.mu.Unlock()
				continue
			}
			if sale.Status != st {
				s.PublishSale(sale)
			}
		}
	}
}

// pushStatus sends the status when it changed (ignoring its clock).
func (s *Server) pushStatus() {
	st := s.status()
	cmp := st
	if m, ok := st.(map[string]any); ok {
		c := make(map[string]any, len(m))
		for k, v := range m {
			if k != "time" {
				c[k] = v
			}
		}
		cmp = c
	}
	b, err := json.Marshal(cmp)
	if err != nil {
		return
	}
	s.events.mu.Lock()
	same := bytes.Equal(b, s.events.lastStatus)
	s.events.lastStatus = b
	s.events.mu.Unlock()
	if !same {
		s.events.publish(EventStatus, st)
	}
}

// events is GET /v1/events: a text/event-stream of sale, refund, batch and status
// events. It starts with the current status, then sends each change as it happens.
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// The stream outlives the server's write timeout.
	_ = rc.SetWriteDeadline(time.Time{})
	c, unsubscribe := s.events.subscribe()
	defer unsubscribe()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	first, _ := json.Marshal(s.status())
	if err := writeEvent(w, EventStatus, first); err != nil {
		return
	}
	if s.Waiting != nil {
		if sale, ok := s.Waiting(r.Context()); ok {
			b, _ := json.Marshal(sale)
			if err := writeEvent(w, EventSale, b); err != nil {
				return
			}
		}
	}
	_ = rc.Flush()
	// A stream opened with the page's cookie ends when the session does (sign-out,
	// expiry, a revoked PIN or token); the page then asks to sign in again.
	session := ""
	if c, err := r.Cookie(auth.SessionCookie); err == nil && r.Header.Get("Authorization") == "" {
		session = c.Value
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-check.C:
			if session != "" && (s.Sessions == nil || !s.Sessions.Alive(session)) {
				return
			}
			continue
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		case ev, ok := <-c:
			if !ok {
				return // fell behind: the client reconnects
			}
			if err := writeEvent(w, ev.kind, ev.data); err != nil {
				return
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// writeEvent writes one event; data is one line of JSON.
func writeEvent(w http.ResponseWriter, kind string, data []byte) error {
	_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", kind, data)
	return err
}
