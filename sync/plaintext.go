package sync

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// plaintextScheme reports whether a broker URL scheme carries MQTT without TLS.
func plaintextScheme(scheme string) bool {
	switch strings.ToLower(scheme) {
	case "tcp", "mqtt", "ws":
		return true
	}
	return false
}

// loopbackHost reports whether host is "localhost" or a loopback address.
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckTLSURL refuses TLS settings (a CA file, a client certificate or key, a
// tls.Config) with a plaintext broker URL (tcp://, mqtt://, ws://): TLS would be
// silently off. The error wraps ErrConfig and names the settings.
func CheckTLSURL(brokerURL string, tc *tls.Config, caFile, certFile, keyFile string) error {
	u, err := url.Parse(brokerURL)
	if err != nil {
		return fmt.Errorf("%w: broker URL: %w", ErrConfig, err)
	}
	if !plaintextScheme(u.Scheme) {
		return nil
	}
	var files []string
	for _, f := range []struct{ name, val string }{{"CA file", caFile}, {"certificate", certFile}, {"key", keyFile}} {
		if f.val != "" {
			files = append(files, f.name)
		}
	}
	if tc != nil {
		files = append(files, "TLS config")
	}
	if len(files) > 0 {
		return fmt.Errorf("%w: TLS settings (%s) with the plaintext broker URL %s would be silently ignored: use ssl://", ErrConfig, strings.Join(files, ", "), brokerURL)
	}
	return nil
}

// plaintextRisk refuses TLS settings with a plaintext URL (CheckTLSURL) and
// describes what a plaintext connection exposes: a password, or traffic that leaves
// the machine. It returns "" for TLS and for loopback without a password. The
// device's configuration refuses the risky cases unless mqtt.allow_plaintext is set;
// the link warns about them at every connect.
func plaintextRisk(cfg Config) (string, error) {
	if err := CheckTLSURL(cfg.BrokerURL, cfg.TLS, cfg.CAFile, cfg.CertFile, cfg.KeyFile); err != nil {
		return "", err
	}
	u, _ := url.Parse(cfg.BrokerURL) // parsed by CheckTLSURL
	if !plaintextScheme(u.Scheme) {
		return "", nil
	}
	switch {
	case cfg.Password != "":
		return "the broker password crosses the network in clear text", nil
	case !loopbackHost(u.Hostname()):
		return "payment requests cross the network in clear text", nil
	}
	return "", nil
}
