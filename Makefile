# Walletless — make help lists the targets.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
CMDS     := posd posctl posgw posfleet
DIST     := dist

.PHONY: help demo build test test-short vet bench fuzz cross firmware mutants clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

demo: ## run posd in demo mode: embedded broker, in-process posgw, scans from this terminal, receipts as PNG in demo/receipts
	$(GO) run ./cmd/posd -demo

build: ## build posd, posctl, posgw and posfleet into bin/
	@mkdir -p bin
	for c in $(CMDS); do $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/$$c ./cmd/$$c || exit 1; done

vet: ## go vet and gofmt check
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

test: vet ## vet, then every test with the race detector (integration tests need mosquitto; in CI they must run)
	$(GO) test -race -count=1 -timeout 20m ./...

test-short: ## quick tests without the race detector
	$(GO) test -short -count=1 ./...

bench: ## benchmarks with figures, one package at a time (decoder beside zbar/zxing-cpp, encoder, store, MQTT beside mosquitto_pub, ledger decisions on bbolt and PostgreSQL with 1/2/4 workers)
	$(GO) test -p 1 -run '^$$' -bench . -benchmem -count=1 ./...

fuzz: ## run each fuzz target for FUZZTIME (default 20s)
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-20s} $$pkg || exit 1; \
	  done; done

cross: ## static CGO_ENABLED=0 builds for linux/arm (GOARM=7) and linux/arm64 into dist/
	@mkdir -p $(DIST)
	for c in $(CMDS); do \
	  CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/$$c-linux-armv7 ./cmd/$$c || exit 1; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/$$c-linux-arm64 ./cmd/$$c || exit 1; \
	done
	@ls -l $(DIST)

# make firmware: FW_VERSION is the release (N[.N[.N]]; default the latest git tag without
# its v); FW_KEY the minisign secret key (posfleet keygen); without FW_KEY a throwaway dev
# key is made in dist/dev-key and the build says so: devices must trust its .pub.
FW_VERSION ?= $(shell git describe --tags --abbrev=0 2>/dev/null | sed 's/^v//')
FW_BOARD   ?= any

firmware: ## signed .wlf artifacts (posd + posctl) for linux/arm and arm64 from make cross; FW_VERSION=, FW_KEY=, FW_MIN_VERSION=, FW_BOARD=
	@test -n "$(FW_VERSION)" || { echo "make firmware: set FW_VERSION=1.2.3 (no git tag to take it from)"; exit 1; }
	$(MAKE) cross VERSION=$(FW_VERSION)
	@mkdir -p bin && $(GO) build -o bin/posfleet ./cmd/posfleet
	@key="$(FW_KEY)"; 	if [ -z "$$key" ]; then 	  key=$(DIST)/dev-key/posfleet.key; 	  [ -f $$key ] || bin/posfleet keygen -o $(DIST)/dev-key >/dev/null || exit 1; 	  echo "make firmware: WARNING no FW_KEY: signed with the THROWAWAY dev key $$key"; 	  echo "  devices accept it only if they trust: $$(tail -n 1 $(DIST)/dev-key/posfleet.pub)"; 	fi; 	for a in armv7:arm arm64:arm64; do 	  suffix=$${a%%:*}; goarch=$${a##*:}; 	  bin/posfleet firmware pack -key $$key -version $(FW_VERSION) $(if $(FW_MIN_VERSION),-min-version $(FW_MIN_VERSION)) 	    -arch $$goarch -board $(FW_BOARD) -o $(DIST)/posd-$(FW_VERSION)-linux-$$suffix.wlf 	    $(DIST)/posd-linux-$$suffix=posd $(DIST)/posctl-linux-$$suffix=posctl || exit 1; 	done

mutants: ## break each safety invariant in a copy of the tree (scripts/mutants.sh) and check the tests catch it; needs mosquitto and fuse3
	./scripts/mutants.sh

clean: ## remove build output and the demo folder
	rm -rf bin $(DIST) demo
