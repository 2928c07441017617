# Walletless — make help lists the targets.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
CMDS     := posd posctl posgw posfleet
DEB_CMDS := posd posctl posfleet
DEB_ARCHES ?= amd64 arm64 armhf
NFPM     := $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
# a Debian version: the tag without its v, or 0.0.0+gHASH before the first tag
DEB_VERSION ?= $(shell v=$$(git describe --tags 2>/dev/null | sed 's/^v//; s/-/+/g'); [ -n "$$v" ] && echo $$v || echo 0.0.0+g$$(git rev-parse --short HEAD 2>/dev/null || echo dev))
DIST     := dist

.PHONY: help demo build test test-short vet bench fuzz cross firmware mutants clean deb lintian deb-test

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

demo: ## run posd in demo mode: embedded broker, in-process posgw, scans from this terminal, receipts as PNG in demo/receipts
	@mkdir -p bin
	@echo "building posd into bin/ (the first build takes a couple of minutes; later ones are quick)…"
	@$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/posd ./cmd/posd
	@echo "starting posd -demo (Ctrl-C stops it)"
	@trap 'true' INT; bin/posd -demo; s=$$?; [ $$s -eq 0 ] || [ $$s -eq 130 ] || exit $$s

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

deb: ## build walletless_VERSION_ARCH.deb for DEB_ARCHES (amd64 arm64 armhf) into dist/ with nfpm; FLEET_PUB=fleet.pub bakes the fleet key in
	@mkdir -p $(DIST)/deb
	@printf 'walletless (%s) unstable; urgency=medium\n\n  * Built with nfpm from git; see the git history for changes.\n\n -- Walletless maintainers <maintainers@walletless.invalid>  %s\n' \
	  '$(DEB_VERSION)' "$$(date -R -u -d @$$(git log -1 --format=%ct 2>/dev/null || date +%s))" | gzip -9n > $(DIST)/deb/changelog.gz
	@# The packaged posd.json; FLEET_PUB=fleet.pub (posfleet keygen) bakes the fleet key in, so a new box checks its pairing QR (docs/fleet.md).
	@cp deploy/posd.json $(DIST)/deb/posd.json
	@if [ -n "$(FLEET_PUB)" ]; then k=$$(grep -v '^untrusted comment' "$(FLEET_PUB)" | head -n 1 | tr -d '[:space:]'); \
	  case "$$k" in RW*) ;; *) echo "FLEET_PUB=$(FLEET_PUB) is not a minisign public key file"; exit 1;; esac; \
	  sed -i "s|\"trusted_keys\": \[\]|\"trusted_keys\": [\"$$k\"]|" $(DIST)/deb/posd.json; \
	  grep -q "$$k" $(DIST)/deb/posd.json || { echo "FLEET_PUB: deploy/posd.json has no empty trusted_keys list to fill"; exit 1; }; \
	  echo "fleet key $$k baked into the packaged posd.json"; \
	else echo "make deb: no FLEET_PUB: the packaged posd.json trusts no fleet key, so a new box cannot check a pairing QR until one is added"; fi
	@for a in $(DEB_ARCHES); do \
	  case $$a in amd64) ga=amd64; gm=;; arm64) ga=arm64; gm=;; armhf) ga=arm; gm=7;; *) echo "unknown arch $$a"; exit 1;; esac; \
	  echo "building $$a binaries"; mkdir -p $(DIST)/deb/$$a; \
	  for c in $(DEB_CMDS); do CGO_ENABLED=0 GOOS=linux GOARCH=$$ga GOARM=$$gm $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/deb/$$a/$$c ./cmd/$$c || exit 1; done; \
	  sed -e "s|\$${ARCH}|$$a|g; s|\$${VERSION}|$(DEB_VERSION)|g; s|\$${BIN}|$(DIST)/deb/$$a|g; s|\$${CHANGELOG}|$(DIST)/deb/changelog.gz|g" \
	    deploy/nfpm.yaml > $(DIST)/deb/nfpm-$$a.yaml; \
	  sed -i "s|src: deploy/posd.json|src: $(DIST)/deb/posd.json|" $(DIST)/deb/nfpm-$$a.yaml; \
	  $(NFPM) package --config $(DIST)/deb/nfpm-$$a.yaml --packager deb --target $(DIST)/ || exit 1; \
	done
	@ls -l $(DIST)/*.deb

lintian: ## build the amd64 .deb and run lintian on it (fails on errors; docs/install.md lists the warnings left)
	$(MAKE) deb DEB_ARCHES=amd64
	lintian --fail-on error $(DIST)/walletless_$(DEB_VERSION)_amd64.deb

deb-test: ## as root: apt-install the .deb in fresh Debian bookworm chroots, amd64 and arm64 (qemu), and sell on arm64 (docs/install.md)
	@test "$$(id -u)" = 0 || { echo "make deb-test: run as root (debootstrap, chroot, mount)"; exit 1; }
	$(MAKE) deb DEB_ARCHES=amd64
	scripts/deb-chroot.sh --arch amd64 $(DIST)/walletless_$(DEB_VERSION)_amd64.deb
	CI=true $(GO) test -count=1 -timeout 20m -run '^TestArm64InstallAndSell$$' -v ./internal/pkgtest/

mutants: ## break each safety invariant in a copy of the tree (scripts/mutants.sh) and check the tests catch it; needs mosquitto and fuse3
	./scripts/mutants.sh

clean: ## remove build output and the demo folder
	rm -rf bin $(DIST) demo
