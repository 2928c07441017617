#!/usr/bin/env bash
# Mutation check of the safety tests: each mutant is a small source change that breaks
# an invariant (posgw deciding a duplicate again, bbolt without fsync, a result applied
# twice, a one-time code accepted twice, any API token accepted, TLS files with a
# plaintext URL, shredded keys kept, a seal racing a key rotation forgotten, a bbolt panic not recovered, posgw without the
# staleness rule, with a persistent session or without reversed tombstones, a device
# message without a required field accepted, a PostgreSQL ledger deciding a key
# twice, posgw acknowledging a request before storing it, a fleet document replayed,
# forged, for another target, expired or invalid accepted, applied during a sale, or a
# dead broker setting kept, a canary rollout that goes on past a rejection, a camera's
# EAN-13 read from one line of noise, a firmware payload installed unchecked, a
# firmware crash loop never rolled back, a store snapshot not restored by a rollback,
# firmware installed while a sale waits, a watchdog that pings without the sale
# engine, a cookie POST without Origin, an Idempotency-Key or ecr_ref ignored, a page
# session that never expires, a printer worse after a firmware switch accepted, an
# interrupted firmware commit never finished, a rollback below the floor, a package
# upgrade over newer firmware, a pairing QR's signature unchecked, its one-time secret
# or nonce not recorded as used, the enrollment server's CA pin skipped, a pairing
# reset while posd runs, the camera pre-check reading the last frame's thresholds, the
# camera's QR and Code 128 decoders accepting a failed correction or checksum, the
# pre-check's noise floor taken from a code's blocks, an EST client taking the first
# certificate of the bag, the EST server answering PEM unasked). Each is
# applied to a copy of the tree (never the working tree), the tests that guard it run,
# and the mutant must be KILLED (the tests fail). MUTANTS=name,name runs only those. Exits non-zero if a mutant survives, if its change no longer applies
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
	if [ -n "${MUTANTS:-}" ] && [[ ",$MUTANTS," != *",$name,"* ]]; then return; fi
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
# PostgreSQL ledger: without the key locks and with the primary key's conflict turned
# into an overwrite, two workers decide one key twice.
mutant pg-ledger-decides-twice gateway/pgledger.go \
	's/^\tseen := map\[int64\]bool{}$/\tif len(keys) >= 0 {\n\t\treturn nil \/\/ mutant\n\t}\n&/; s/\$13, \$14, \$15, \$16)`, args...); err/$13, $14, $15, $16) ON CONFLICT (key) DO UPDATE SET decided_at = EXCLUDED.decided_at, requests = EXCLUDED.requests`, args...); err/' \
	./gateway/ '^TestPGLedger$/^one_key_many_deciders$'
# posgw acknowledging a request to the broker before the ledger stored its answer.
mutant posgw-acks-before-storing gateway/gateway.go \
	's/^\tanswers, err := g.applier.Apply(ctx, msgs)$/\tack(batch) \/\/ mutant\n&/' \
	./gateway/ '^TestAckOnlyAfterStored$'
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
mutant shred-seal-racing-rotation-forgotten daemon/shred.go \
	's/^\t\tshredRotated()$/\t\tshredRotated()\n\t\ts.sealedIn.Store(0)/' \
	./daemon/ '^TestSealRacingRotation$'
mutant store-panic-not-recovered store/guard.go \
	's/^\t\tr := recover()$/\t\tvar r any \/\/ mutant/' \
	./store/ '^(TestDamageWhileOpen|TestTruncatedWhileOpen)$'
mutant posgw-no-staleness-rule gateway/staleness.go \
	's/if maxAge < 0 || req.Offline || req.CreatedAt.IsZero() {/if true || maxAge < 0 || req.Offline || req.CreatedAt.IsZero() {/' \
	'./gateway/ ./conformance/' '^(TestStateTable|TestPosgwPasses)$'
mutant posgw-persistent-session gateway/gateway.go \
	's/^\t\tCleanSession: true,$/\t\tCleanSession: false, \/\/ mutant/' \
	./gateway/ '^TestCloudSessionIsClean$'
mutant posgw-no-reversed-tombstone gateway/apply.go \
	's/^\t\treturn true, tx.PutEntry(e)$/\t\treturn true, nil \/\/ mutant/' \
	'./gateway/ ./conformance/' '^(TestStateTable|TestPosgwPasses)$'
mutant missing-required-field-accepted sync/required.go \
	's/if _, ok := fields\[name\]; !ok {/if _, ok := fields[name]; false \&\& !ok {/' \
	./sync/ '^TestDecodeUpRefusesMissingRequiredFields$'
mutant fleet-replay-accepted fleet/agent.go \
	's/if doc.Version <= st.Current {/if doc.Version < st.Current {/' \
	./fleet/ '^TestAgent'
mutant fleet-signature-unchecked fleet/sign.go \
	's/if !minisign.Verify(k, doc, signature) {/if false \&\& !minisign.Verify(k, doc, signature) {/' \
	./fleet/ '.'
mutant fleet-any-target fleet/agent.go \
	's/if doc.Target.Slot() != slot {/if false \&\& doc.Target.Slot() != slot {/' \
	./fleet/ '^TestAgent'
mutant fleet-expired-accepted fleet/document.go \
	's/if d.NotAfter != nil \&\& now.After(\*d.NotAfter) {/if false \&\& d.NotAfter != nil {/' \
	./fleet/ '^TestAgent'
mutant fleet-validation-skipped fleet/agent.go \
	's/^\t\terr = a.cfg.Validate(eff)$/\t\terr = nil \/\/ mutant/' \
	./fleet/ '^TestAgent'
mutant fleet-apply-during-sale daemon/fleet.go \
	's/if s.Waiting != "" || s.Authorizing > 0 || s.InDoubt > 0 {/if _ = s; false {/' \
	./internal/e2e/ '^TestFleetConfigAgainstMosquitto$'
mutant fleet-bad-broker-kept daemon/fleet.go \
	's/if !waitOnline(ctx, ng.link, timeout) {/if false \&\& !waitOnline(ctx, ng.link, timeout) {/' \
	./internal/e2e/ '^TestFleetConfigAgainstMosquitto$'
mutant canary-ignores-rejection cmd/posfleet/push.go \
	's/^\t\t\tcase r.State == "rejected" || r.State == "failed":$/\t\t\tcase false: \/\/ mutant/' \
	./internal/e2e/ '^TestFleetSimulatorCanary$'
mutant ean13-read-unconfirmed scanner/decode.go \
	's/if rd.sym == "ean13" \&\& (!s.upright/if false \&\& rd.sym == "ean13" \&\& (!s.upright/' \
	./scanner/ '^TestNoFalseReads$'
mutant firmware-payload-hash-unchecked firmware/artifact.go \
	's/if err == nil \&\& hex.EncodeToString(sum.Sum(nil)) != p.SHA256 {/if false \&\& hex.EncodeToString(sum.Sum(nil)) != p.SHA256 {/' \
	./firmware/ '^TestInstallAndRefusals$'
mutant firmware-crash-loop-never-rolls-back firmware/machine.go \
	's/if u.Attempts >= m.cfg.MaxAttempts {/if false \&\& u.Attempts >= m.cfg.MaxAttempts {/' \
	./firmware/ '^(TestCrashLoopRollsBack|TestKilledInEachStep)$'
mutant firmware-snapshot-not-restored firmware/machine.go \
	's/if u.Snapshot \&\& m.cfg.DB != "" {/if false \&\& u.Snapshot \&\& m.cfg.DB != "" {/' \
	./firmware/ '^(TestCrashLoopRollsBack|TestKilledInEachStep)$'
mutant firmware-installs-during-a-sale daemon/firmware.go \
	's/\tcase s.Waiting != "":/\tcase false \&\& s.Waiting != "":/' \
	./daemon/ '^TestFirmwareWaitsForTheSaleInProgress$'
mutant watchdog-pings-without-engine daemon/systemd.go \
	's/^\t\t_, err = e.Stats(pctx)$/\t\terr = nil \/\/ mutant: no question through the engine loop/' \
	./daemon/ '^TestWatchdogNeedsTheEngineLoop$'
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
mutant firmware-printer-state-not-compared firmware/machine.go \
	's/^\tif n < b {$/\tif false \&\& n < b {/' \
	./firmware/ '^TestHealthWorse$'
mutant firmware-boot-leaves-commit-unfinished firmware/machine.go \
	's/^\t\treturn BootAction{}, m.commitLocked()$/\t\treturn BootAction{}, nil/' \
	./firmware/ '^TestKilledInEachStep$'
mutant firmware-rollback-below-the-floor firmware/machine.go \
	's/if CompareVersions(p.Version, m.st.Floor) < 0 {/if false \&\& CompareVersions(p.Version, m.st.Floor) < 0 {/' \
	./firmware/ '^TestRollbackToThePrevious$'
mutant package-upgrade-over-newer-firmware cmd/posctl/firmware.go \
	's/case st.Version != "" \&\& firmware.CompareVersions(pkg, st.Version) < 0:/case false:/' \
	./cmd/posctl/ '^TestFirmwareInitSeedsAndUpgrades$'
mutant pairing-signature-skipped pairing/qr.go \
	's/if !ed25519.Verify(raw, q.signed, q.sig) {/if false \&\& !ed25519.Verify(raw, q.signed, q.sig) {/' \
	./pairing/ '^TestSignParseVerify$'
mutant pairing-secret-not-marked-used pairing/signer.go \
	's/^\tr.UsedAt = now.UTC()$/\t_ = now \/\/ mutant: the secret stays unused/' \
	./pairing/ '^TestEnrollSaveAndReuse$'
mutant pairing-nonce-not-recorded pairing/save.go \
	's/^\t\tused = append(used, p.Nonce)$/\t\t_ = used \/\/ mutant: the nonce is not recorded/' \
	./pairing/ '^TestEnrollSaveAndReuse$'
mutant pairing-ca-pin-skipped pairing/enroll.go \
	's/if Fingerprint(c.Raw) == fp {/if true {/' \
	./pairing/ '^TestEnrollRefusals$'
# The camera pre-check computes thresholds lazily: without computing them where the
# finder check looks below the scanned rows, it reads the last frame's.
mutant prescan-stale-thresholds scanner/prescan.go \
	's/if y>>psShift >= p.thrRows {/if false \&\& y>>psShift >= p.thrRows {/; s/^\tp.ensure((y + 4\*int(total) + 2) >> psShift)$/\t\/\/ mutant/' \
	./scanner/ '^TestPrescanForgetsTheLastFrame$'
# The camera's allocation-free QR decode corrects a block with Reed-Solomon: without
# its checks (as many error positions as the locator's degree, a codeword after the
# correction) a block beyond correction is "corrected" into a wrong text.
mutant qr-fast-accepts-failed-correction scanner/qrfast.go \
	's/^\tif found != l {$/\tif false \&\& found != l {/; s/^\tif !syndromes(blk, ecPer, \&syn) {$/\tif false \&\& !syndromes(blk, ecPer, \&syn) {/' \
	./scanner/ '^TestQRFastReadsWhatGozxingReads$'
# The camera's allocation-free Code 128 decoder without the check symbol reads a code
# with a symbol misread.
mutant c128-fast-skips-checksum scanner/c128fast.go \
	's/if checksum%103 != lastCode || len(result) == 0 {/if len(result) == 0 {/' \
	./scanner/ '^TestC128FastMatchesGozxing$'
# posctl pairing reset while posd runs would pull the certificate from under it.
mutant pairing-reset-while-posd-runs cmd/posctl/pairing.go \
	's/if _, err := os.Stat(db); err == nil {/if _, err := os.Stat(db); false \&\& err == nil {/' \
	./cmd/posctl/ '^TestPairingStatusAndReset$'
# The camera pre-check's flat-block limit follows the noise floor, measured on the
# quietest blocks; measured on the busiest (a code's), it hides low-contrast codes.
mutant prescan-noise-floor-from-code scanner/prescan.go \
	's/if seen\*8 >= n {/if seen*8 >= 7*n {/' \
	./scanner/ '^TestPrescanKeepsEveryCode$'
# An EST certs-only answer is a SET: the client must pick the certificate for its own
# key, not the first one (openssl's bag with the CA first).
mutant est-client-picks-first-cert pairing/enroll.go \
	's/if pub, ok := c.PublicKey.(\*ecdsa.PublicKey); ok \&\& pub.Equal(\&key.PublicKey) {/if true {/' \
	./pairing/ '^TestEnrollReadsOpenSSLBags$'
# The reference EST server answers certs-only PKCS#7 unless the client prefers PEM.
mutant est-server-answers-pem pairing/signer.go \
	's/^\treturn qPEM > 0 \&\& qPEM > qP7$/\treturn true/' \
	./pairing/ '^TestEnrollSaveAndReuse$'
echo
printf '%s\n' "${results[@]}"
echo "make mutants: $(($(date +%s) - started))s"
exit $fail
