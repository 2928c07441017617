package daemon

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"path/filepath"
	"strconv"
	"time"

	"github.com/walletless/walletless/api"
	"github.com/walletless/walletless/auth"
	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/payment"
	"github.com/walletless/walletless/store"
	"github.com/walletless/walletless/web"
)

// Files of the counter page and the register API under the data directory.
const (
	PINsFile  = "pins.json"    // the clerks' PIN hashes (0600)
	KeysFile  = "registers.db" // Idempotency-Key answers and ecr_ref links (bbolt)
	eventTick = 250 * time.Millisecond
)

// counter is the clerk's page and the register API's durable keys.
type counter struct {
	keys     *api.Keys
	pins     *auth.PINs
	sessions *auth.Sessions
}

// openCounter opens the PIN file and the key file and builds the page's settings.
func openCounter(cfg config.Config, demo bool) (*counter, error) {
	pins, err := auth.OpenPINs(filepath.Join(cfg.DataDir, PINsFile))
	if err != nil {
		return nil, err
	}
	keys, err := api.OpenKeys(filepath.Join(cfg.DataDir, KeysFile))
	if err != nil {
		return nil, err
	}
	return &counter{
		keys: keys, pins: pins, sessions: &auth.Sessions{TTL: time.Duration(cfg.Page.SessionTTL)},
	}, nil
}

// configure hands the server the page (built from cfg, the configuration in force, so
// a pushed page.language takes effect), sessions, PINs, keys and the sales list.
func (c *counter) configure(srv *api.Server, st *store.Store, engine *payment.Engine, cfg config.Config, demo bool) error {
	page, err := web.Handler(web.Config{Language: cfg.PageLanguage(), Currencies: cfg.PageCurrencies(), Merchant: cfg.Merchant.Name, Demo: demo})
	if err != nil {
		return err
	}
	srv.Page = page
	srv.Sessions = c.sessions
	srv.PINs = c.pins
	srv.Keys = c.keys
	srv.Waiting = engine.Waiting
	srv.ListSales = func(from, to time.Time) ([]payment.Sale, error) { return listSales(st, from, to) }
	if demo {
		srv.DemoCode = sampleCode
	}
	return nil
}

// idTime reads the creation time in a UUIDv7 sale or refund id.
func idTime(id string) (time.Time, bool) {
	if !payment.ValidID(id) {
		return time.Time{}, false
	}
	ms, err := strconv.ParseUint(id[0:8]+id[9:13], 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(ms)), true
}

// listSales reads the sales created in [from, to): ids are UUIDv7, so only those in
// range are decoded.
func listSales(st *store.Store, from, to time.Time) ([]payment.Sale, error) {
	var out []payment.Sale
	err := st.ForEachSale(func(id string, doc []byte) error {
		at, ok := idTime(id)
		if !ok || at.Before(from) || !at.Before(to) {
			return nil
		}
		var s payment.Sale
		if err := json.Unmarshal(doc, &s); err != nil {
			return fmt.Errorf("daemon: sale %s: %w", id, err)
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

// oldestUnsynced returns when the oldest sale or refund the cloud has not answered
// yet was made (sales still waiting for a code aside), or false when there is none.
func oldestUnsynced(st *store.Store) (time.Time, bool) {
	var (
		oldest time.Time
		found  bool
	)
	_ = st.View(func(tx *store.Tx) error {
		return tx.ForEachUnsettled(func(id, note string) error {
			if note == string(payment.StatusWaitingForCode) {
				return nil
			}
			if at, ok := idTime(id); ok && (!found || at.Before(oldest)) {
				oldest, found = at, true
			}
			return nil
		})
	})
	return oldest, found
}

// sampleCode makes a fresh demo Alipay-range code (28 and 16 random digits), so a
// second demo sale never meets a code already used.
func sampleCode() string {
	n, err := rand.Int(rand.Reader, big.NewInt(1e16))
	if err != nil {
		return fmt.Sprintf("28%016d", time.Now().UnixNano()%1e16)
	}
	return fmt.Sprintf("28%016d", n)
}
