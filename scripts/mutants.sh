#!/usr/bin/env bash
# Mutation check of the safety tests: each mutant is a small source change that breaks
# an invariant (posgw deciding a duplicate again, bbolt without fsync, a result applied
# twice, a one-time code accepted twice, any API token accepted, TLS files with a
# plaintext URL, shredded keys kept, a bbolt panic not recovered, a cookie POST without Origin, an
# Idempotency-Key or ecr_ref ignored, a page session that never expires). Each is applied to
# a copy of the tree (never the working tree), the tests that guard it run, and the mutant must be KILLED (the
# tests fail). Exits non-zero if a mutant survives, if its change no longer applies
# (the pattern did not match: fix this script), or if the mutant does not build.
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
started=$(date +%s)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/src"
# The tree as it is now, uncommitted changes included, without ignored files.
git ls-files -z -co --exclude-standard | tar --null -T - -cf - | tar -C "$tmp/src" -xf -

fail=0
results=()
# mutant NAME FILE SED-EXPRESSION PACKAGES RUN-PATTERN
mutant() {
	local name=$1 file=$2 expr=$3 pkgs=$4 run=$5 t0=$(date +%s)
	local dir="$tmp/$name"
	cp -a "$tmp/src" "$dir"
	sed -i -e "$expr" "$dir/$file"
	if cmp -s "$tmp/src/$file" "$dir/$file"; then
		results+=("NOT-APPLIED $name: the pattern no longer matches $file")
		fail=1
		rm -rf "$dir"
		return
	fi
	if ! (cd "$dir" && $GO build ./... && $GO vet $pkgs) >"$dir.build" 2>&1; then
		results+=("BROKEN   $name: the mutant does not build: $(head -c 300 "$dir.build")")
		fail=1
		rm -rf "$dir"
		return
	fi
	echo "== $name: go test -run '$run' $pkgs"
	if (cd "$dir" && $GO test -count=1 -timeout 8m -run "$run" $pkgs) >"$dir.log" 2>&1; then
		results+=("SURVIVED $name ($(($(date +%s) - t0))s)")
		fail=1
	else
		results+=("KILLED   $name ($(($(date +%s) - t0))s) by $(grep -E -- '^--- FAIL' "$dir.log" | awk '{print $3}' | sort -u | tr '\n' ' ')")
		results+=("         $(grep -m1 -E '_test\.go:[0-9]+: ' "$dir.log" | sed 's/^ *//' | cut -c1-160)")
	fi
	rm -rf "$dir"
}

mutant posgw-redecides-duplicates gateway/apply.go \
	's/^\tif seen && (e.Device != j.Device || !e.IsSale()) {$/\tseen = false \/\/ mutant\n&/' \
	./internal/e2e/ '^(TestBrokerGoesAwayDuringStream|TestProxyCutsAndStalls|TestDeviceKilledWhileDraining)$'
mutant bbolt-fsync-off store/store.go \
	's/^\tdb.NoSync = opts.NoSync$/\tdb.NoSync = true \/\/ mutant/' \
	./internal/e2e/ '^TestPowerCut$'
mutant result-applied-twice payment/resolve.go \
	's/^\tif !open {$/\tif false \&\& !open { \/\/ mutant/' \
	./payment/ '.'
mutant one-time-code-check-removed payment/engine.go \
	's/if at, seen := tx.CodeSeen(h); seen \&\& /if at, seen := tx.CodeSeen(h); false \&\& seen \&\& /' \
	'./payment/ ./internal/e2e/' '^(TestOneTimeCodeUsedTwice|TestCrashSafety)$'
mutant api-any-token-accepted auth/auth.go \
	's/if subtle.ConstantTimeCompare(h, sum\[:\]) == 1 {/if true || subtle.ConstantTimeCompare(h, sum[:]) == 1 {/' \
	'./auth/ ./api/' '.'
mutant tls-files-with-plaintext-url sync/plaintext.go \
	's/if !plaintextScheme(u.Scheme) {/if true || !plaintextScheme(u.Scheme) {/' \
	./sync/ '.'
mutant shred-keys-never-destroyed internal/shred/shred.go \
	's/if epoch == k.cur {/if true || epoch == k.cur {/' \
	'./internal/shred/ ./daemon/' '^(TestDestroyShreds|TestNoPaymentCodeLeftAtRest|TestSealedOutbox)$'
mutant store-panic-not-recovered store/guard.go \
	's/^\t\tr := recover()$/\t\tvar r any \/\/ mutant/' \
	./store/ '^(TestDamageWhileOpen|TestTruncatedWhileOpen)$'
mutant cookie-post-without-origin api/guard.go \
	's/if !safeMethod(r.Method) \&\& r.Header.Get("Origin") == "" {/if false \&\& r.Header.Get("Origin") == "" {/' \
	./api/ '^TestSessionCookieAndCSRF$'
mutant idempotency-key-ignored api/register.go \
	's/if key == "" || s.Keys == nil {/if true || key == "" {/' \
	./api/ '^TestIdempotencyKeySurvivesRestart$'
mutant ecr-ref-ignored api/api.go \
	's/^\t\tif s.Keys != nil {$/\t\tif false \&\& s.Keys != nil {/' \
	./api/ '^TestECRRefCreatesOnce$'
mutant page-session-never-expires auth/session.go \
	's/if now.Sub(v.used) > s.ttl() {/if false \&\& now.Sub(v.used) > s.ttl() {/' \
	./auth/ '^TestSessionsExpireWhenIdle$'
echo
printf '%s\n' "${results[@]}"
echo "make mutants: $(($(date +%s) - started))s"
exit $fail
