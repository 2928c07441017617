package archtest

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/walletless/walletless"

type pkg struct {
	ImportPath string
	Name       string
	Doc        string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Name,Doc,Deps", module+"/...")
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func TestEveryPackageHasDocComment(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment (add a doc.go)", p.ImportPath)
		}
	}
}

// forbidden maps a package (and its subpackages) to the packages of ours it must not
// import, directly or indirectly. "*" forbids every package of ours.
var forbidden = map[string][]string{
	"paycode":        {"*"},
	"config":         {"*"},
	"printer/escpos": {"*"},
	"scanner":        {"payment", "store", "sync", "printer", "daemon", "api", "gateway"},
	"device":         {"payment", "store", "sync", "printer", "scanner", "daemon", "api", "gateway"},
	"printer":        {"payment", "store", "sync", "scanner", "daemon", "api", "gateway"},
	"store":          {"payment", "sync", "printer", "scanner", "device", "daemon", "api", "gateway"},
	"sync":           {"payment", "store", "printer", "scanner", "device", "daemon", "api"},
	"payment":        {"sync", "printer", "scanner", "device", "daemon", "api", "gateway"},
	"gateway":        {"payment", "store", "printer", "scanner", "device", "daemon", "api"},
	"api":            {"daemon", "sync", "gateway"},
	"broker":         {"*"},
	// The contract's schemas stand alone: any cloud's tests may use them.
	"docs/schema": {"*"},
	// The conformance kit and the test cloud know the contract, never posgw's ledger
	// or rules (the test cloud is written from the document alone).
	"conformance":        {"payment", "store", "printer", "scanner", "device", "daemon", "api", "gateway"},
	"internal/minicloud": {"payment", "store", "printer", "scanner", "device", "daemon", "api", "gateway"},
	"internal/wirecheck": {"payment", "store", "printer", "scanner", "device", "daemon", "api", "gateway", "sync"},
	// pgtest runs a throwaway PostgreSQL for tests: it knows nothing of ours.
	"internal/pgtest": {"*"},
	// fleet is the config contract and the device's state machine; posfleet imports it.
	"fleet": {"*"},
	// firmware verifies and installs artifacts; it knows nothing of sales, the store's
	// internals or MQTT (it shares the signed-envelope contract with fleet).
	"firmware": {"payment", "store", "sync", "printer", "scanner", "device", "daemon", "api", "gateway"},
	// auth holds the local API's tokens: it knows nothing of sales, the store or MQTT.
	"auth": {"payment", "store", "sync", "printer", "scanner", "device", "daemon", "api", "gateway"},
	// pairing is the pairing QR, the enrollment client and the reference signer: it
	// shares the fleet keys with fleet and knows nothing of sales, the store or MQTT.
	"pairing": {"payment", "store", "sync", "printer", "scanner", "device", "daemon", "api", "gateway", "config", "firmware"},
	// web is the clerk's page: static files; every fact on it comes through the API.
	"web": {"*"},
}

func rel(path string) string {
	return strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
}

func under(path, root string) bool {
	return path == root || strings.HasPrefix(path, root+"/")
}

func TestImportsFlowOneWay(t *testing.T) {
	for _, p := range listPackages(t) {
		deps := p.Deps
		me := rel(p.ImportPath)
		for root, bans := range forbidden {
			if !under(me, root) {
				continue
			}
			for _, d := range deps {
				if !strings.HasPrefix(d, module+"/") {
					continue
				}
				dr := rel(d)
				if under(dr, root) && !strings.HasPrefix(dr, "internal/") {
					continue // itself or its own subpackages
				}
				for _, ban := range bans {
					if ban == "*" && !under(dr, "internal") || under(dr, ban) {
						t.Errorf("%s imports %s, against the one-way flow (ARCHITECTURE.md)", me, dr)
					}
				}
			}
		}
		if !under(me, "daemon") && !under(me, "cmd") {
			for _, d := range deps {
				if under(rel(d), "daemon") && strings.HasPrefix(d, module+"/") {
					t.Errorf("%s imports the daemon; only commands may", me)
				}
			}
		}
	}
}
