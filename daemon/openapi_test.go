package daemon

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"aead.dev/minisign"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/firmware"
	"github.com/walletless/walletless/internal/apispec"
)

// TestRealPosdMatchesAPIDocument runs posd in demo mode (posgw approves) and checks
// the answers of a day at the counter against docs/api.yaml: the status with its
// real fields, a sale through approval, today's list, a refund, the batch close.
func TestRealPosdMatchesAPIDocument(t *testing.T) {
	spec, err := apispec.Load(filepath.Join("..", "docs", "api.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// With firmware updates on (slots and a trusted key), so GET and POST
	// /v1/firmware answer from the real agent.
	dir := t.TempDir()
	pub, priv, err := minisign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	slots, bin := filepath.Join(dir, "slots"), filepath.Join(dir, "posd-bin")
	os.WriteFile(bin, []byte("posd"), 0o755)
	if err := (firmware.Files{Dir: slots}).Init(bin); err != nil {
		t.Fatal(err)
	}
	tp := startPosd(t, dir, "tcp://127.0.0.1:1", true, func(c *config.Config) {
		c.Fleet.TrustedKeys = []string{pub.String()}
		c.Firmware.SlotsDir = slots
	})
	defer tp.shutdown()
	contentType := "application/json"
	call := func(method, template, path, body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequest(method, tp.api+path, bytes.NewBufferString(body))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Authorization", "Bearer "+tp.info.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if err := spec.Check(method, template, resp.StatusCode, mt, raw); err != nil {
			t.Error(err)
		}
		var out map[string]any
		if mt == "application/json" {
			if err := json.Unmarshal(raw, &out); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	call("GET", "/v1/status", "/v1/status", "")
	s := tp.sale(12000, "KRW", sampleCode())
	id := s["id"].(string)
	call("GET", "/v1/sales/{id}", "/v1/sales/"+id, "")
	call("GET", "/v1/sales", "/v1/sales", "")
	call("POST", "/v1/sales/{id}/reprint", "/v1/sales/"+id+"/reprint", "")
	call("POST", "/v1/receipts/last/print", "/v1/receipts/last/print", "")
	call("POST", "/v1/sales/{id}/refunds", "/v1/sales/"+id+"/refunds", `{"amount_minor": 1000}`)
	call("GET", "/v1/status", "/v1/status", "")
	call("GET", "/v1/demo/code", "/v1/demo/code", "")
	call("GET", "/v1/batches/current", "/v1/batches/current", "")
	call("GET", "/v1/batches/{id}/report", "/v1/batches/current/report", "")
	call("POST", "/v1/sales", "/v1/sales", fmt.Sprintf(`{"amount_minor": 4500, "currency": "KRW", "flow": "merchant_presented", "ecr_ref": %q}`, "till-9"))
	call("GET", "/v1/ecr/{ref}", "/v1/ecr/till-9", "")
	call("GET", "/v1/config", "/v1/config", "")
	call("GET", "/v1/config/history", "/v1/config/history", "")
	call("POST", "/v1/config/rollback", "/v1/config/rollback", `{"version": 1}`) // 404: no fleet version yet
	call("GET", "/v1/firmware", "/v1/firmware", "")
	call("GET", "/metrics", "/metrics", "")
	var wlf bytes.Buffer
	if _, err := firmware.Pack(&wlf, priv, firmware.Manifest{Version: "2.0", Arch: runtime.GOARCH, Board: "any"}, []firmware.PackFile{{Name: "posd", Path: bin}}); err != nil {
		t.Fatal(err)
	}
	contentType = "application/octet-stream"
	call("POST", "/v1/firmware", "/v1/firmware?check=1", wlf.String())
	call("POST", "/v1/firmware", "/v1/firmware?check=1", "not an artifact") // 422
	contentType = "application/json"
	call("POST", "/v1/firmware/rollback", "/v1/firmware/rollback", "") // 409: nothing on trial
}
