package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestPosdKilledWhileDraining drives the real posd binary through its HTTP API while
// killing it with SIGKILL at random points (right after a scan, while the request or
// its result is on the wire, while the outbox drains after a restart), restarting it
// each time. Afterwards every sale is final, posgw's ledger holds each approved sale
// exactly once, and the device's approved total equals the ledger's total for the
// device to the minor unit.
func TestPosdKilledWhileDraining(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	const sales = 60
	dir := t.TempDir()
	brokerURL := startMosquitto(t, dir)
	bins := build(t, dir, "posd", "posgw")
	gwData := filepath.Join(dir, "gw-data")
	gw := start(t, nil, bins["posgw"], "-broker", brokerURL, "-data", gwData, "-instances", "2")
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	api := "http://" + apiAddr
	// Behind the unreachable broker posd counts as offline at once, so its sales are
	// refused (the default policy) and owe posgw an audit record each.
	deadBroker := fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t))
	offlineConf := filepath.Join(dir, "offline.json")
	if err := os.WriteFile(offlineConf, []byte(`{"version": 1, "payment": {"offline_after": "1ms"}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	posdOn := func(broker string) *proc {
		args := []string{"-data", filepath.Join(dir, "posd-data"), "-api", apiAddr,
			"-broker", broker, "-device-id", "crash-1", "-scanner", "stdin", "-printer", "none"}
		if broker == deadBroker {
			args = append(args, "-config", offlineConf)
		}
		p := start(t, nil, bins["posd"], args...)
		waitHTTP(t, api+"/v1/status")
		return p
	}
	posd := func() *proc { return posdOn(brokerURL) }
	kill := func(p *proc) {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	amounts := map[string]int64{}
	p := posd()
	states := map[string]int{} // kills by the state posd showed just before
	refused := map[string]bool{}
	for i := 0; i < sales; i++ {
		amount := int64(1000 + rng.IntN(90000))
		code, sale := getJSON(t, "POST", api+"/v1/sales", fmt.Sprintf(`{"amount_minor": %d, "currency": "KRW"}`, amount))
		if code == 409 { // a sale left waiting for its code by a kill: cancel it
			_, st := getJSON(t, "GET", api+"/v1/status", "")
			if w, ok := st["waiting_sale"].(string); ok {
				getJSON(t, "POST", api+"/v1/sales/"+w+"/cancel", "")
			}
			code, sale = getJSON(t, "POST", api+"/v1/sales", fmt.Sprintf(`{"amount_minor": %d, "currency": "KRW"}`, amount))
		}
		if code != 201 {
			t.Fatalf("create sale %d: %d %v", i, code, sale)
		}
		id := sale["id"].(string)
		scan := fmt.Sprintf(`{"code": "28%016d"}`, 1234567800000000+i)
		if code, s := getJSON(t, "POST", api+"/v1/sales/"+id+"/code", scan); code != 200 {
			t.Fatalf("scan sale %d: %d %v", i, code, s)
		}
		amounts[id] = amount
		if i%15 == 7 {
			// A backlog: a few sales while the broker is out of reach (refused,
			// their audit records wait in the outbox), then a kill as soon as posd
			// is back on the broker and drains them.
			kill(p)
			p = posdOn(deadBroker)
			for k := 0; k < 3; k++ {
				code, sale := getJSON(t, "POST", api+"/v1/sales", `{"amount_minor": 500, "currency": "KRW"}`)
				if code != 201 {
					break
				}
				oid := sale["id"].(string)
				time.Sleep(5 * time.Millisecond) // past offline_after
				if c, s := getJSON(t, "POST", api+"/v1/sales/"+oid+"/code", fmt.Sprintf(`{"code": "28%016d"}`, 9900000000000000+i*10+k)); c != 200 || s["status"] != "refused" {
					t.Errorf("sale behind an unreachable broker: %d %v, want refused", c, s)
				}
				amounts[oid] = 500
				refused[oid] = true
			}
			kill(p)
			p = posd()
			_, st := getJSON(t, "GET", api+"/v1/status", "")
			if d, _ := st["outbox_depth"].(float64); d > 0 {
				states["draining after a restart"]++
			} else {
				states["drained after a restart"]++
			}
			kill(p)
			p = posd()
			continue
		}
		if rng.IntN(4) == 0 { // about every fourth sale: kill soon after the scan
			time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
			// Classify the kill by what posd shows just before it.
			_, s := getJSON(t, "GET", api+"/v1/sales/"+id, "")
			if s["status"] == "authorizing" {
				states["result owed"]++
			} else {
				states["sale settled"]++
			}
			kill(p)
			p = posd()
			if rng.IntN(2) == 0 { // and sometimes again while it drains after the restart
				time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
				_, st := getJSON(t, "GET", api+"/v1/status", "")
				if d, _ := st["outbox_depth"].(float64); d > 0 {
					states["draining after a restart"]++
				} else {
					states["drained after a restart"]++
				}
				kill(p)
				p = posd()
			}
		}
	}
	// Everything settles: no sale left in a state that waits for the cloud.
	final := map[string]bool{"approved": true, "declined": true, "reversed": true, "refused": true, "cancelled": true, "reversal_failed": true}
	statuses := map[string]string{}
	deadline := time.Now().Add(90 * time.Second)
	for id := range amounts {
		for {
			_, s := getJSON(t, "GET", api+"/v1/sales/"+id, "")
			st, _ := s["status"].(string)
			if final[st] {
				statuses[id] = st
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sale %s stuck in %q", id, st)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor(t, "posd outbox drained", 60*time.Second, func() bool {
		_, st := getJSON(t, "GET", api+"/v1/status", "")
		d, ok := st["outbox_depth"].(float64)
		return ok && d == 0
	})
	p.stop(t)
	gw.stop(t)

	var devTotal int64
	approved := map[string]bool{}
	count := map[string]int{}
	for id, st := range statuses {
		count[st]++
		if st == "approved" {
			devTotal += amounts[id]
			approved[id] = true
		}
	}
	kills := 0
	for _, n := range states {
		kills += n
	}
	t.Logf("%d sales, %d classified SIGKILLs: %v; kills by state: %v", len(amounts), kills, count, states)
	for _, st := range []string{"result owed", "draining after a restart"} {
		if states[st] == 0 {
			t.Errorf("no kill landed with %s (kills by state: %v)", st, states)
		}
	}

	out, err := exec.Command(bins["posgw"], "ledger", "-data", gwData, "-json").CombinedOutput()
	if err != nil {
		t.Fatalf("posgw ledger: %v\n%s", err, out)
	}
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var e struct {
			Key, Device, Status string
			AmountMinor         int64 `json:"amount_minor"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("ledger line %q: %v", sc.Text(), err)
		}
		seen[e.Key]++
		if e.Status == "approved" {
			if !approved[e.Key] {
				t.Errorf("ledger approved %s, the device says %q", e.Key, statuses[e.Key])
			}
			if e.AmountMinor != amounts[e.Key] {
				t.Errorf("ledger amount %d for %s, device %d", e.AmountMinor, e.Key, amounts[e.Key])
			}
		} else if approved[e.Key] {
			t.Errorf("device approved %s, the ledger says %s", e.Key, e.Status)
		}
	}
	for id := range approved {
		if seen[id] != 1 {
			t.Errorf("approved sale %s is %d times in the ledger", id, seen[id])
		}
	}
	// Refused sales: an audit record each, exactly once, never a payment.
	out, err = exec.Command(bins["posgw"], "ledger", "-data", gwData, "-attempts", "-json").CombinedOutput()
	if err != nil {
		t.Fatalf("posgw ledger -attempts: %v\n%s", err, out)
	}
	attempts := map[string]int{}
	sc = bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var a struct{ Key string }
		if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
			t.Fatalf("attempt line %q: %v", sc.Text(), err)
		}
		attempts[a.Key]++
	}
	for id := range refused {
		if statuses[id] != "refused" {
			t.Errorf("sale %s was answered refused, it ended %s", id, statuses[id])
		}
		if attempts[id] != 1 || seen[id] != 0 {
			t.Errorf("refused sale %s: %d audit records and %d payments in the ledger, want 1 and 0", id, attempts[id], seen[id])
		}
	}
	if len(refused) == 0 {
		t.Error("no sale was refused offline")
	}
	out, err = exec.Command(bins["posgw"], "ledger", "-data", gwData, "-totals", "-json").CombinedOutput()
	if err != nil {
		t.Fatalf("posgw ledger -totals: %v\n%s", err, out)
	}
	var ledgerTotal int64
	sc = bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var tt struct {
			Device     string
			SalesMinor int64 `json:"sales_minor"`
		}
		json.Unmarshal(sc.Bytes(), &tt)
		if tt.Device == "crash-1" {
			ledgerTotal += tt.SalesMinor
		}
	}
	if ledgerTotal != devTotal {
		t.Errorf("ledger total %d, device total %d", ledgerTotal, devTotal)
	}
}
