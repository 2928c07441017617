package e2e

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	stdsync "sync"
)

// apiDataDirs maps the host:port of a posd API to its data directory, where posd
// writes admin.token; the request helpers read the token from there.
var apiDataDirs stdsync.Map

// registerAPI records the data directory of the posd whose API is at apiURL (a URL or
// host:port).
func registerAPI(apiURL, dataDir string) {
	if u, err := url.Parse(apiURL); err == nil && u.Host != "" {
		apiURL = u.Host
	}
	apiDataDirs.Store(apiURL, dataDir)
}

// registerPosdArgs records the -api and -data arguments of a posd command line.
func registerPosdArgs(args []string) {
	var api, data string
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-api":
			api = args[i+1]
		case "-data":
			data = args[i+1]
		}
	}
	if api != "" && data != "" {
		registerAPI(api, data)
	}
}

// authorize adds posd's admin token (read from its data directory each time: a posd
// started afresh may have written a new one) and, for a request that changes state,
// Content-Type: application/json.
func authorize(req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		req.Header.Set("Content-Type", "application/json")
	}
	dir, ok := apiDataDirs.Load(req.URL.Host)
	if !ok {
		return
	}
	tok, err := os.ReadFile(filepath.Join(dir.(string), "admin.token"))
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
}
