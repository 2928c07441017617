package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/walletless/walletless/paycode"
	wsync "github.com/walletless/walletless/sync"
)

// DefaultLimits are the per-currency approval limits in minor units.
var DefaultLimits = map[string]int64{
	"KRW": 1_000_000, // ₩1,000,000
	"JPY": 100_000,   // ¥100,000
	"CNY": 500_000,   // CN¥5,000.00
	"HKD": 500_000,   // HK$5,000.00
	"SGD": 100_000,   // S$1,000.00
	"THB": 3_000_000, // ฿30,000.00
	"USD": 100_000,   // US$1,000.00
	"EUR": 100_000,   // €1,000.00
}

// Rules are the gateway's decision rules.
type Rules struct {
	Limits map[string]int64 // per-currency limit in minor units; nil means DefaultLimits
}

// Decide applies the rules to one request.
func (r Rules) Decide(req wsync.PaymentRequest) (status, reason string) {
	limits := r.Limits
	if limits == nil {
		limits = DefaultLimits
	}
	if _, ok := paycode.LookupCurrency(req.Currency); !ok {
		return wsync.ResultDeclined, "unknown currency " + req.Currency
	}
	limit, ok := limits[req.Currency]
	switch {
	case !ok:
		return wsync.ResultDeclined, "currency " + req.Currency + " is not accepted by this gateway"
	case req.Scheme == "":
		return wsync.ResultDeclined, "payment scheme not identified"
	case req.AmountMinor > limit:
		return wsync.ResultDeclined, fmt.Sprintf("amount exceeds the gateway limit of %d minor units", limit)
	}
	return wsync.ResultApproved, ""
}

// Config configures a Gateway.
type Config struct {
	BrokerURL string
	Username  string
	Password  string
	ClientID  string // default "posgw-" + random
	Group     string // shared subscription group; default "posgw"
	Ledger    *Ledger
	Rules     Rules
	Log       *slog.Logger
}

// Gateway is a running posgw.
type Gateway struct {
	cfg  Config
	log  *slog.Logger
	reqs chan mqtt.Message
}

// New returns a Gateway; start it with Run.
func New(cfg Config) (*Gateway, error) {
	if cfg.BrokerURL == "" || cfg.Ledger == nil {
		return nil, fmt.Errorf("gateway: BrokerURL and Ledger are required")
	}
	if cfg.ClientID == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		cfg.ClientID = "posgw-" + hex.EncodeToString(b[:])
	}
	if cfg.Group == "" {
		cfg.Group = "posgw"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Gateway{cfg: cfg, log: cfg.Log, reqs: make(chan mqtt.Message, 1024)}, nil
}

// Run serves until ctx is done; a cancelled context returns nil.
func (g *Gateway) Run(ctx context.Context) error {
	filter := "$share/" + g.cfg.Group + "/" + wsync.AllRequests
	opts := mqtt.NewClientOptions().
		AddBroker(g.cfg.BrokerURL).
		SetClientID(g.cfg.ClientID).
		SetCleanSession(false).
		SetOrderMatters(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(2 * time.Second).
		SetMaxReconnectInterval(30 * time.Second).
		SetKeepAlive(30 * time.Second)
	if g.cfg.Username != "" {
		opts.SetUsername(g.cfg.Username).SetPassword(g.cfg.Password)
	}
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		go func() {
			t := c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
				select {
				case g.reqs <- m:
				default:
					g.log.Warn("request queue full; dropping (the device resends)", "topic", m.Topic())
				}
			})
			if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
				g.log.Error("subscribe failed", "filter", filter, "err", t.Error())
				return
			}
			g.log.Info("gateway subscribed", "filter", filter, "broker", g.cfg.BrokerURL)
		}()
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		g.log.Warn("broker connection lost", "err", err)
	})
	client := mqtt.NewClient(opts)
	client.Connect()
	defer client.Disconnect(250)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-g.reqs:
			g.handle(client, m)
		}
	}
}

func (g *Gateway) handle(c mqtt.Client, m mqtt.Message) {
	device, err := wsync.DeviceFromTopic(m.Topic())
	if err != nil {
		g.log.Warn("ignoring message on unexpected topic", "topic", m.Topic())
		return
	}
	var req wsync.PaymentRequest
	if err := wsync.Decode(m.Payload(), &req); err != nil {
		g.log.Warn("ignoring malformed request", "device", device, "bytes", len(m.Payload()), "err", err)
		return
	}
	if err := req.Validate(); err != nil {
		g.log.Warn("ignoring invalid request", "device", device, "err", err)
		return
	}
	if req.Device != device {
		g.log.Warn("ignoring request whose device differs from its topic", "topic_device", device)
		return
	}
	entry, seen, err := g.cfg.Ledger.Decide(req.Key, func() Entry {
		status, reason := g.cfg.Rules.Decide(req)
		return Entry{
			Key: req.Key, Device: device, AmountMinor: req.AmountMinor, Currency: req.Currency,
			Scheme: req.Scheme, MaskedCode: paycode.Mask(req.Code), Status: status, Reason: reason,
			DecidedAt: time.Now().UTC(),
		}
	})
	if err != nil {
		g.log.Error("ledger write failed; not answering (the device resends)", "key", req.Key, "err", err)
		return
	}
	if seen {
		g.log.Info("duplicate request answered from the ledger", "key", req.Key, "device", device, "status", entry.Status)
	} else {
		g.log.Info("payment decided", "key", req.Key, "device", device, "amount_minor", req.AmountMinor,
			"currency", req.Currency, "scheme", req.Scheme, "code", entry.MaskedCode, "status", entry.Status)
	}
	res, _ := json.Marshal(wsync.PaymentResult{V: wsync.Version, Key: entry.Key, Status: entry.Status, Reason: entry.Reason, DecidedAt: entry.DecidedAt})
	t := c.Publish(wsync.ResultTopic(device), 1, false, res)
	if !t.WaitTimeout(10*time.Second) || t.Error() != nil {
		g.log.Warn("result publish not acknowledged; the device will resend", "key", req.Key, "err", t.Error())
	}
}
