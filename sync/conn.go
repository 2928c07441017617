package sync

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// bufConn reads through a buffer. paho reads every packet's fixed header one byte at a
// time straight from the connection (a system call per byte); with the buffer one
// read serves many packets, which matters when a window of results arrives at once.
// Writes are paho's own, one call per packet.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// OpenConnection returns a paho connection function for tcp://, mqtt://, ssl://,
// tls://, mqtts:// and tcps:// brokers that reads through a 32 KiB buffer; tc is used
// for the TLS schemes (nil: system roots; ServerName defaults to the broker's host).
// For other schemes (websockets, unix) it returns nil, and paho's own dialer applies.
func OpenConnection(brokerURL string, tc *tls.Config) mqtt.OpenConnectionFunc {
	u, err := url.Parse(brokerURL)
	if err != nil {
		return nil
	}
	var secure bool
	switch u.Scheme {
	case "tcp", "mqtt":
	case "ssl", "tls", "mqtts", "tcps":
		secure = true
	default:
		return nil
	}
	return func(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
		timeout := o.ConnectTimeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var d net.Dialer
		raw, err := d.DialContext(ctx, "tcp", uri.Host)
		if err != nil {
			return nil, fmt.Errorf("sync: dial %s: %w", uri.Host, err)
		}
		conn := raw
		if secure {
			c := &tls.Config{MinVersion: tls.VersionTLS12}
			if tc != nil {
				c = tc.Clone()
			}
			if c.ServerName == "" {
				c.ServerName = uri.Hostname()
			}
			tconn := tls.Client(raw, c)
			if err := tconn.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, fmt.Errorf("sync: TLS handshake with %s: %w", uri.Host, err)
			}
			conn = tconn
		}
		return &bufConn{Conn: conn, r: bufio.NewReaderSize(conn, 32<<10)}, nil
	}
}

// Client describes one Walletless MQTT client for ClientOptions.
type Client struct {
	BrokerURL, ClientID string
	Username, Password  string
	TLS                 *tls.Config // nil: plain TCP (or paho's defaults for TLS schemes)
	KeepAlive, Timeout  time.Duration
	// Lost receives the connection's error when paho reports it lost (never blocking:
	// a loss already waiting is enough); Down runs first, on paho's goroutine.
	Lost chan<- error
	Down func()
	// OnMessage handles messages queued for the persistent session that arrive
	// before the subscriptions are made again.
	OnMessage mqtt.MessageHandler
	// CleanSession asks the broker for a clean session: nothing is queued for the
	// client while it is away and nothing survives its disconnect. The cloud uses it
	// (docs/protocol.md, "The cloud's session"); a device keeps a persistent one.
	CleanSession bool
}

// ClientOptions are the paho options of every Walletless client, device link and
// gateway alike: a persistent session (CleanSession false, unless c.CleanSession)
// under the client id,
// no reconnects or connect retries of paho's own (Reconnect does them, with jitter,
// and subscribes again), every wait bounded by Timeout, credentials, TLS and the
// buffered connection of OpenConnection.
func ClientOptions(c Client) *mqtt.ClientOptions {
	opts := mqtt.NewClientOptions().
		AddBroker(c.BrokerURL).
		SetClientID(c.ClientID).
		SetCleanSession(c.CleanSession).
		SetOrderMatters(false).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(c.KeepAlive).
		SetPingTimeout(c.Timeout).
		SetConnectTimeout(c.Timeout).
		SetWriteTimeout(c.Timeout).
		SetDefaultPublishHandler(c.OnMessage)
	if c.Username != "" {
		opts.SetUsername(c.Username).SetPassword(c.Password)
	}
	if c.TLS != nil {
		opts.SetTLSConfig(c.TLS)
	}
	if open := OpenConnection(c.BrokerURL, c.TLS); open != nil {
		opts.SetCustomOpenConnectionFn(open)
	}
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		if c.Down != nil {
			c.Down()
		}
		select {
		case c.Lost <- err:
		default:
		}
	})
	return opts
}
