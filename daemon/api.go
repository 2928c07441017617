package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	stdsync "sync"
	"time"

	"github.com/walletless/walletless/api"
	"github.com/walletless/walletless/auth"
	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/internal/secretfile"
	"github.com/walletless/walletless/paycode"
	"github.com/walletless/walletless/payment"
)

// Files of the local API's door under the data directory.
const (
	AdminTokenFile = "admin.token" // the manager token for the device's own tools (0600)
	TokensFile     = "tokens.json" // the tokens' hashes, names and roles (0600)
	APICertFile    = "api.crt"     // the self-signed device certificate (off loopback)
	APIKeyFile     = "api.key"     // its private key (0600)
)

// door is the local API's lock: the token store, the admin token, TLS off loopback,
// the host names a request may address, and the last scan the counter refused.
type door struct {
	tokens      *auth.Store
	adminToken  string
	tls         *tls.Config // nil: plain HTTP (loopback only)
	fingerprint string      // hex SHA-256 of the served certificate, "" without TLS
	hosts       []string
	refused     refusedScans
}

// openDoor makes the data directory private, opens the token store, mints the admin
// token on first start and sets up TLS: an api.addr off loopback is only served over
// HTTPS, with the configured certificate or a self-signed device certificate made
// here; when neither is possible posd does not start.
func openDoor(cfg config.Config, log *slog.Logger) (*door, error) {
	if err := secretfile.PrivateDir(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("daemon: data dir: %w", err)
	}
	tokens, err := auth.Open(filepath.Join(cfg.DataDir, TokensFile))
	if err != nil {
		return nil, err
	}
	adminFile := filepath.Join(cfg.DataDir, AdminTokenFile)
	admin, made, err := tokens.EnsureAdmin(adminFile)
	if err != nil {
		return nil, err
	}
	if made {
		log.Info("a manager token for the local API was written", "file", adminFile)
	}
	d := &door{tokens: tokens, adminToken: admin}
	host, _, _ := net.SplitHostPort(cfg.API.Addr)
	if name, err := os.Hostname(); err == nil && name != "" {
		d.hosts = append(d.hosts, name, name+".local")
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		d.hosts = append(d.hosts, host) // a wildcard address is no name to be addressed by
	}
	var cert tls.Certificate
	switch {
	case cfg.API.TLSCertFile != "":
		if err := secretfile.Check(cfg.API.TLSKeyFile); err != nil {
			return nil, fmt.Errorf("daemon: api.tls_key_file: %w", err)
		}
		if cert, err = tls.LoadX509KeyPair(cfg.API.TLSCertFile, cfg.API.TLSKeyFile); err != nil {
			return nil, fmt.Errorf("daemon: api.tls_cert_file, api.tls_key_file: %w", err)
		}
	case isLoopback(host):
		return d, nil // plain HTTP on loopback
	default:
		if cert, err = deviceCert(cfg.DataDir, host); err != nil {
			return nil, fmt.Errorf("daemon: api.addr %q is not on loopback, so the API is served only over HTTPS, and the device certificate could not be made (set api.tls_cert_file and api.tls_key_file, or keep api.addr on 127.0.0.1): %w", cfg.API.Addr, err)
		}
	}
	sum := sha256.Sum256(cert.Certificate[0])
	d.fingerprint = hex.EncodeToString(sum[:])
	d.tls = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	log.Info("local API serves HTTPS", "tls_fingerprint", d.fingerprint)
	return d, nil
}

// listener wraps ln in TLS when the door has a certificate.
func (d *door) listener(ln net.Listener) net.Listener {
	if d.tls == nil {
		return ln
	}
	return tls.NewListener(ln, d.tls)
}

// url is the API's base URL for the banner and tests: a wildcard listener is
// reached on 127.0.0.1.
func (d *door) url(addr net.Addr) string {
	scheme := "http"
	if d.tls != nil {
		scheme = "https"
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return scheme + "://" + addr.String()
	}
	ip := tcp.IP
	if ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return scheme + "://" + net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port))
}

// configure hands the server its tokens and host names.
func (d *door) configure(srv *api.Server) {
	srv.Tokens = d.tokens
	srv.Hosts = d.hosts
}

// addStatus adds the door's fields to GET /v1/status.
func (d *door) addStatus(s map[string]any) {
	if d.fingerprint != "" {
		s["tls_fingerprint"] = d.fingerprint
	}
	if r, ok := d.refused.last(); ok {
		s["last_refused_scan"] = r
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// deviceCert loads the self-signed device certificate from dataDir, making it (ECDSA
// P-256, ten years) on first use. Its names: the host name, the listen address,
// localhost, 127.0.0.1 and ::1 (and the interface addresses for a wildcard listen
// address).
func deviceCert(dataDir, listenHost string) (tls.Certificate, error) {
	certFile, keyFile := filepath.Join(dataDir, APICertFile), filepath.Join(dataDir, APIKeyFile)
	keyPEM, err := secretfile.Read(keyFile)
	if err == nil {
		certPEM, err := os.ReadFile(certFile)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("daemon: %w", err)
		}
		return tls.X509KeyPair(certPEM, keyPEM)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return tls.Certificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("daemon: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("daemon: %w", err)
	}
	hostname, _ := os.Hostname()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "walletless posd " + hostname, Organization: []string{"Walletless"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if hostname != "" {
		tmpl.DNSNames = append(tmpl.DNSNames, hostname, hostname+".local")
	}
	ip := net.ParseIP(listenHost)
	switch {
	case ip != nil && !ip.IsUnspecified():
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	case ip == nil && listenHost != "":
		tmpl.DNSNames = append(tmpl.DNSNames, listenHost)
	default: // a wildcard: every address of this machine
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
					tmpl.IPAddresses = append(tmpl.IPAddresses, n.IP)
				}
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("daemon: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("daemon: %w", err)
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// The key first: a certificate without its key is never left behind.
	if err := secretfile.Write(keyFile, keyPEM); err != nil {
		return tls.Certificate{}, err
	}
	if err := secretfile.Write(certFile, certPEM); err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// refusedScan is a scan from the counter's scanner that did not pay: the clerk's
// page shows it. The code is only ever masked.
type refusedScan struct {
	At         time.Time `json:"at"`
	SaleID     string    `json:"sale_id,omitempty"`
	MaskedCode string    `json:"masked_code"`
	Reason     string    `json:"reason"`
}

// refusedScans keeps the last refused scan.
type refusedScans struct {
	mu   stdsync.Mutex
	scan *refusedScan // guarded by mu
}

// note records the outcome of engine.Scan when the scan was refused: not applied
// (no sale waiting, one authorizing, the code used before) or applied with a local
// decline or an offline refusal.
func (r *refusedScans) note(code string, sale payment.Sale, applied bool, err error) {
	var reason string
	switch {
	case err != nil:
		reason = err.Error()
		if sale.Reason != "" {
			reason = sale.Reason
		}
	case applied && (sale.Status == payment.StatusDeclined || sale.Status == payment.StatusRefused):
		reason = sale.Reason
	default:
		return
	}
	masked := sale.MaskedCode
	if masked == "" || !applied {
		masked = paycode.Mask(code)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.scan = &refusedScan{At: time.Now().UTC(), SaleID: sale.ID, MaskedCode: masked, Reason: reason}
}

func (r *refusedScans) last() (refusedScan, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.scan == nil {
		return refusedScan{}, false
	}
	return *r.scan, true
}
