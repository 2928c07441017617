// Package paycode identifies payment codes scanned at a counter — one counter, any
// wallet — and builds the merchant-presented codes a terminal shows. It is pure: no
// I/O, only the standard library, and nothing else of Walletless, so other projects can
// use it as a library.
//
// # What it recognises
//
// Identify (or Rules.Identify with a rule table from configuration) sorts a scanned
// string into one of three kinds and never guesses:
//
//   - KindWallet: the one-time number a wallet app shows (Alipay, WeChat Pay, UnionPay
//     ...), matched against a versioned data table of WalletRule (prefix ranges, length
//     range, optional Luhn check, and the Source and Basis of every rule). When more
//     than one rule matches, the error wraps ErrAmbiguous and Result.Candidates lists
//     them.
//   - KindEMVCPM: an EMVCo consumer-presented QR (base64 of BER-TLV: 85 "CPV01", 61
//     application templates with 4F, 50, 57, 5A, 9F25, 62/63/64 with 9F26 ...). It is a
//     card credential with a one-time cryptogram and can never be approved locally.
//     DecodeCPM validates it and keeps only masked data (CPM).
//   - KindEMVMPM: an EMVCo merchant-presented QR (Decode, Build): two-digit ids and
//     lengths counted in characters, CRC-16/CCITT-FALSE over the UTF-8 bytes up to and
//     including "6304". Schemes are recognised by the globally unique identifier of
//     their merchant account template (Schemes: JPQR, PromptPay, PIX, QRIS, SGQR,
//     PayNow, NETS, DuitNow, VietQR, FPS, QR Ph, UnionPay and the card networks), and
//     their profile rules (currency, country, JPQR's store ids, PIX's txid) are
//     checked as warnings.
//
// Decode is strict where a broken code would mean a wrong payment — bad CRC, lengths
// that overrun or are not numeric, data after the CRC, duplicate ids, 00 not first, 63
// not last, a bad currency or amount — and lenient, with a warning each, where codes in
// the wild break the letter of the specification and wallets accept them: PromptPay
// and VietQR transfers without 52/59/60, DuitNow's payload format "02", ids out of
// ascending order, a lower-case CRC.
//
// # Money
//
// Amounts are int64 minor units by the ISO 4217 exponent of the currency
// (LookupCurrency, Currencies), parsed exactly from the decimal string (ParseAmount,
// FormatAmount). No floating point is used anywhere.
//
// # Masking
//
// Every Result carries Masked — the last four characters and the first 8 hex digits
// of the code's SHA-256 — for logs and receipts. CPM keeps no PAN, track 2,
// cardholder name or cryptogram, only masked forms. No error text contains the code.
//
// # Adding a wallet rule
//
// Write the table as JSON and load it with ParseRules; keep the built-in rules you
// still want, because the table replaces the default as a whole:
//
//	{"version": "2026-12-01", "wallets": [
//	  {"scheme": "alipay", "operator": "Ant Group", "prefixes": [[25, 30]],
//	   "min_len": 16, "max_len": 24, "source": "opendocs.alipay.com/open/194/106039",
//	   "basis": "documented"},
//	  {"scheme": "examplepay", "operator": "Example Ltd", "prefixes": [[88, 88]],
//	   "min_len": 20, "max_len": 20, "check": "luhn",
//	   "source": "Example Pay merchant integration guide v3, section 4.2",
//	   "basis": "documented"}]}
//
// then call rules.Identify(code). Rules are checked when loaded (ErrRules); a rule
// whose basis is "guessed" adds a warning to every result it produces. Rules
// implements json.Unmarshaler with the same checks, so a configuration struct can
// hold a *Rules field directly.
//
// # Building a dynamic merchant code
//
//	jpy, _ := paycode.LookupCurrency("JPY")
//	code, err := paycode.Build(paycode.MPM{
//		PayloadFormat:     "01",
//		PointOfInitiation: paycode.PointDynamic,
//		MerchantAccounts: []paycode.MerchantAccount{{ID: "26", GUI: "jp.or.paymentsjapan",
//			Fields: []paycode.Field{{ID: "01", Value: "0000000000001"}, ...}}},
//		MCC: "5812", Currency: jpy.Numeric, Amount: paycode.FormatAmount(498, jpy),
//		Country: "JP", MerchantName: "CAFE", MerchantCity: "TOKYO",
//	})
//
// Build computes the CRC and refuses anything Decode would reject; Decode(Build(m))
// gives m back, and Build(Decode(s)) gives s back (with the CRC in upper case).
//
// # Caveats
//
//   - Wallet one-time codes carry no checksum and their number ranges are set by each
//     operator, often undocumented and sometimes shared: Alipay, AlipayHK and Alipay+
//     partner wallets all use the 25-30 range, and only an online call can tell them
//     apart. A match says which rule fits, not that the code is live; only the
//     operator can say that.
//   - The wallet rule table is only as good as its sources. Each rule says where it
//     comes from (Source) and how sure it is (Basis); LINE Pay, Kakao Pay and PayPay
//     are not in the default table because their customer codes have no published
//     prefix, and a length-only rule would make other wallets' codes ambiguous.
//   - Scheme identifiers marked "inferred" in Schemes come from public payloads and
//     integrator libraries, not from the scheme's own specification.
//   - Scheme profile checks are warnings: a code that breaks them is still a valid
//     EMVCo code, and paycode does not decide whether a wallet will accept it.
//   - Result.Scheme of a merchant-presented code names it (an umbrella identifier such
//     as SGQR or QRIS first, then the first recognised account); such codes often carry
//     several accounts and the payer's app chooses among them.
//   - The short hash in Mask is unkeyed SHA-256: it correlates log lines but does not
//     hide a code from someone who can enumerate candidates (a PAN with a known BIN).
//   - ISO 4217 exponents are ISO's, not market practice (IDR and TWD have 2).
//   - DefaultWalletRules is read once at package initialisation; changing it later has
//     no effect. Use ParseRules or NewRules.
package paycode
