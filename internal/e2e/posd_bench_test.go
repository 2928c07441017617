package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/daemon"
)

// BenchmarkPosdDrain10k measures the whole terminal, not only the link: posd takes
// 10,000 sales while its broker is unreachable (they wait in its outbox as
// authorizing), then restarts against mosquitto and posgw; the clock runs until every
// sale is approved and its outbox entry is gone. mosquitto_pub's QoS 1 rate on the
// same broker is measured in the same run. bundle=1 sends one publish per sale,
// bundle=32 is the default (up to 32 sales per publish).
//
// WL_DRAINPROF=file writes a CPU profile of the drain phase alone.
func BenchmarkPosdDrain10k(b *testing.B) {
	pub := need(b, "mosquitto_pub", "mosquitto-clients")
	m := newMosquitto(b, mosqOpts{persistence: true, users: []string{"dev-pd"}})
	startGateways(b, m.URL(), 1)
	for _, bundle := range []int{1, 32} {
		b.Run(fmt.Sprint("bundle=", bundle), func(b *testing.B) { benchPosdDrain(b, pub, m, bundle) })
	}
}

func benchPosdDrain(b *testing.B, pub string, m *mosq, bundle int) {
	const n = 10_000
	pubRate := mosquittoPubRate(b, pub, m, n)

	var total time.Duration
	for it := 0; it < b.N; it++ {
		b.StopTimer()
		dir := b.TempDir()
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := "tcp://" + ln.Addr().String()
		ln.Close()
		// Offline phase: the link cannot connect; offline_after is long, so sales wait
		// as authorizing instead of being refused.
		api, stop := runPosd(b, dir, dead, bundle)
		for i := 0; i < n; i++ {
			id := post(b, api+"/v1/sales", fmt.Sprintf(`{"amount_minor": %d, "currency": "KRW"}`, 1000+i))["id"].(string)
			post(b, api+"/v1/sales/"+id+"/code", fmt.Sprintf(`{"code": "28%016d"}`, int64(it)*n+int64(i)))
		}
		stop()
		api, stop = runPosd(b, dir, m.URL(), bundle)
		b.StartTimer()
		if f := os.Getenv("WL_DRAINPROF"); f != "" {
			pf, _ := os.Create(f)
			pprof.StartCPUProfile(pf)
			defer pprof.StopCPUProfile()
		}
		t0 := time.Now()
		deadline := t0.Add(5 * time.Minute)
		for {
			st := get(b, api+"/v1/status")
			if st["outbox_depth"] == float64(0) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("drain stuck: %v", st["outbox_depth"])
			}
			time.Sleep(5 * time.Millisecond)
		}
		total += time.Since(t0)
		b.StopTimer()
		stop()
	}
	rate := float64(b.N*n) / total.Seconds()
	b.ReportMetric(rate, "sales/s")
	b.ReportMetric(pubRate, "mosquitto_pub_msgs/s")
	b.ReportMetric(rate/pubRate, "ratio")
}

func mosquittoPubRate(b *testing.B, pub string, m *mosq, n int) float64 {
	b.Helper()
	lines := strings.Repeat(string(salePayload("dev-pd", 0))+"\n", n)
	cmd := exec.Command(pub, "-h", "127.0.0.1", "-p", fmt.Sprint(m.port), "-u", "dev-pd", "-P", password,
		"-i", "bench-pub-pd", "-q", "1", "-t", "walletless/v1/devices/dev-pd/heartbeat", "-l")
	cmd.Stdin = strings.NewReader(lines)
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("mosquitto_pub: %v\n%s", err, out)
	}
	return float64(n) / time.Since(t0).Seconds()
}

func runPosd(b *testing.B, dir, brokerURL string, bundle int) (api string, stop func()) {
	b.Helper()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "posd")
	cfg.API.Addr = "127.0.0.1:0"
	cfg.DeviceID = "dev-pd"
	cfg.MQTT.Broker = brokerURL
	cfg.MQTT.Username, cfg.MQTT.Password = "dev-pd", password
	cfg.MQTT.AllowPlaintext = true // a password over loopback plaintext: the benchmark measures the link, not TLS
	cfg.MQTT.Bundle = bundle
	cfg.Payment.OfflineAfter = config.Duration(time.Hour)
	cfg.Payment.AuthTimeout = config.Duration(time.Hour)
	cfg.Payment.QueryTimeout = config.Duration(time.Hour)
	cfg.Scanner.Source = "stdin"
	cfg.Printer.Target = "none"
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan daemon.Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{Config: cfg, Stdin: strings.NewReader(""), Ready: func(i daemon.Info) { ready <- i }})
	}()
	select {
	case i := <-ready:
		api = i.APIURL
		registerAPI(api, cfg.DataDir)
	case err := <-done:
		b.Fatalf("posd: %v", err)
	}
	return api, func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("posd stopped with %v", err)
		}
	}
}

func post(b *testing.B, url, body string) map[string]any {
	b.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &m); err != nil || resp.StatusCode >= 300 {
		b.Fatalf("POST %s: %d %s", url, resp.StatusCode, raw)
	}
	return m
}

func get(b *testing.B, url string) map[string]any {
	b.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	authorize(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return m
}
