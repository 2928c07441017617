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
