package daemon

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/walletless/walletless/paycode"
	"github.com/walletless/walletless/payment"
)

// metrics are posd's Prometheus metrics, served at GET /metrics behind the API's
// manager role (docs/operations.md). They live for the whole run, across
// configuration generations.
type metrics struct {
	reg        *prometheus.Registry
	sales      *prometheus.CounterVec // finished sales by status
	connects   prometheus.Counter
	reconnects prometheus.Counter
	decode     prometheus.Histogram
	commit     prometheus.Histogram
	printFails prometheus.Counter
	connected  atomic.Bool // set after the first connect
}

func newMetrics(rt *instance) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.sales = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "walletless_sales_total", Help: "Sales finished since posd started, by status (approved, declined, refused, cancelled, stored_offline, …).",
	}, []string{"status"})
	m.connects = prometheus.NewCounter(prometheus.CounterOpts{Name: "walletless_mqtt_connects_total", Help: "Successful connections to the MQTT broker."})
	m.reconnects = prometheus.NewCounter(prometheus.CounterOpts{Name: "walletless_mqtt_reconnects_total", Help: "Connections to the MQTT broker after the first one."})
	m.decode = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "walletless_decode_seconds", Help: "Time to identify a scanned payment code (wallet rules, EMVCo parsing).",
		Buckets: []float64{.00001, .00005, .0001, .0005, .001, .005, .01, .05},
	})
	m.commit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "walletless_commit_seconds", Help: "Time from a scan handed to the sale engine until the sale's new state is committed to bbolt (fsync included).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	m.printFails = prometheus.NewCounter(prometheus.CounterOpts{Name: "walletless_printer_failures_total", Help: "Receipts that could not be printed (dropped as unprintable or backlog full)."})
	st := rt.st
	m.reg.MustRegister(m.sales, m.connects, m.reconnects, m.decode, m.commit, m.printFails,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "walletless_outbox_depth", Help: "Outbox entries not yet acknowledged by the cloud."}, func() float64 {
			d, _, err := st.OutboxStats()
			if err != nil {
				return -1
			}
			return float64(d)
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "walletless_oldest_unsynced_age_seconds", Help: "Age of the oldest sale or refund the cloud has not answered (0: none)."}, func() float64 {
			at, ok := oldestUnsynced(st)
			if !ok {
				return 0
			}
			return time.Since(at).Seconds()
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "walletless_scanner_connected", Help: "1 while the scanner is connected, else 0."}, func() float64 {
			if rt.scanStatus.State().Connected {
				return 1
			}
			return 0
		}),
		&openSales{rt: rt},
	)
	return m
}

// handler serves the registry.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// onConnect counts a connection to the broker; the link calls it after each.
func (m *metrics) onConnect() {
	m.connects.Inc()
	if m.connected.Swap(true) {
		m.reconnects.Inc()
	}
}

// finished counts a finished sale.
func (m *metrics) finished(s payment.Sale) { m.sales.WithLabelValues(string(s.Status)).Inc() }

// timeIdentify wraps a code identifier with the decode histogram.
func (m *metrics) timeIdentify(f func(string) (paycode.Result, error)) func(string) (paycode.Result, error) {
	return func(code string) (paycode.Result, error) {
		start := time.Now()
		r, err := f(code)
		m.decode.Observe(time.Since(start).Seconds())
		return r, err
	}
}

// openSales reports the sales the engine holds open (waiting, authorizing, in doubt,
// stored offline), asked through the engine's own loop at scrape time.
type openSales struct{ rt *instance }

var openSalesDesc = prometheus.NewDesc("walletless_sales_open", "Sales open in the sale engine now, by state.", []string{"state"}, nil)

func (o *openSales) Describe(ch chan<- *prometheus.Desc) { ch <- openSalesDesc }

func (o *openSales) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	e := o.rt.engine(ctx)
	if e == nil {
		return
	}
	s, err := e.Stats(ctx)
	if err != nil {
		return
	}
	waiting := 0.0
	if s.Waiting != "" {
		waiting = 1
	}
	ch <- prometheus.MustNewConstMetric(openSalesDesc, prometheus.GaugeValue, waiting, "waiting_for_code")
	ch <- prometheus.MustNewConstMetric(openSalesDesc, prometheus.GaugeValue, float64(s.Authorizing), "authorizing")
	ch <- prometheus.MustNewConstMetric(openSalesDesc, prometheus.GaugeValue, float64(s.InDoubt), "in_doubt")
	ch <- prometheus.MustNewConstMetric(openSalesDesc, prometheus.GaugeValue, float64(s.StoredOffline), "stored_offline")
}
