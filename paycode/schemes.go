package paycode

import "strings"

// Scheme describes a merchant-presented scheme that paycode recognises by the globally
// unique identifier (sub-field 00) of a merchant account template (ids 26-51), or by a
// card-network id that EMVCo reserves (02-25).
type Scheme struct {
	Name     string   `json:"name"`               // e.g. "promptpay"
	Operator string   `json:"operator"`           // who runs or settles it
	GUIs     []string `json:"guis,omitempty"`     // matched case-insensitively
	IDs      [2]int   `json:"ids,omitempty"`      // reserved top-level id range (02-25), if any
	Country  string   `json:"country,omitempty"`  // ISO 3166 alpha-2 the scheme expects in id 58
	Currency string   `json:"currency,omitempty"` // ISO 4217 numeric it expects in id 53
	// Umbrella marks a national umbrella identifier (SGQR, QRIS) that names the code as a
	// whole; it wins over the payment schemes listed next to it.
	Umbrella bool   `json:"umbrella,omitempty"`
	Source   string `json:"source"` // where the identifier comes from, and how sure we are
}

// Schemes is the built-in table of merchant-presented schemes, in the order used to pick
// Result.Scheme when a code names several (umbrella identifiers first, then the first
// recognised account in code order).
var Schemes = []Scheme{
	{Name: "jpqr", Operator: "Payments Japan Association (JPQR)", GUIs: []string{"jp.or.paymentsjapan"},
		Country: "JP", Currency: "392",
		Source: "JPQR unified technical specification guideline (MPM), Payments Japan Association; GUI as used by go.mercari.io/go-emv-code/mpm/jpqr — documented"},
	{Name: "promptpay", Operator: "National ITMX (PromptPay)", GUIs: []string{"A000000677010111", "A000000677010112", "A000000677010113", "A000000677012004"},
		Country: "TH", Currency: "764",
		Source: "Bank of Thailand / Thai Bankers' Association Thai QR Code standard: AID A000000677010111 credit transfer, ...12 bill payment; ...13/...2004 from public generator libraries — inferred"},
	{Name: "pix", Operator: "Banco Central do Brasil (Pix)", GUIs: []string{"br.gov.bcb.pix"},
		Country: "BR", Currency: "986",
		Source: "BCB Manual de Padrões para Iniciação do Pix (BR Code): GUI br.gov.bcb.pix — documented"},
	{Name: "qris", Operator: "Bank Indonesia / ASPI (QRIS)", GUIs: []string{"ID.CO.QRIS.WWW"}, Umbrella: true,
		Country: "ID", Currency: "360",
		Source: "Bank Indonesia QRIS standard: national merchant id template ID.CO.QRIS.WWW (usually id 51); seen in public QRIS payloads — inferred"},
	{Name: "sgqr", Operator: "MAS / IMDA (SGQR)", GUIs: []string{"SG.SGQR"}, Umbrella: true,
		Country: "SG", Currency: "702",
		Source: "SGQR specification (MAS/IMDA): SGQR id template SG.SGQR in id 51; seen in public SGQR payloads — inferred"},
	{Name: "paynow", Operator: "ABS (PayNow)", GUIs: []string{"SG.PAYNOW"},
		Country: "SG", Currency: "702",
		Source: "Association of Banks in Singapore PayNow QR: GUI SG.PAYNOW; seen in public PayNow payloads — inferred"},
	{Name: "nets", Operator: "NETS", GUIs: []string{"SG.COM.NETS"},
		Country: "SG", Currency: "702",
		Source: "NETS QR as carried in SGQR codes (GUI SG.COM.NETS); seen in public SGQR payloads — inferred"},
	{Name: "duitnow", Operator: "PayNet (DuitNow QR)", GUIs: []string{"A0000006150001"},
		Country: "MY", Currency: "458",
		Source: "PayNet DuitNow QR: AID A0000006150001 in id 26, seen in public DuitNow payloads (e.g. github.com/natsu90/duitnowqr-razer) — inferred"},
	{Name: "vietqr", Operator: "NAPAS (VietQR)", GUIs: []string{"A000000727"},
		Country: "VN", Currency: "704",
		Source: "NAPAS VietQR (NAPAS 247) specification: AID A000000727 in id 38, as used by public VietQR generators — inferred"},
	{Name: "fps", Operator: "HKICL (FPS)", GUIs: []string{"hk.com.hkicl"},
		Country: "HK", Currency: "344",
		Source: "HKMA Common QR Code specification for FPS: GUI hk.com.hkicl — inferred from public generators"},
	{Name: "qrph", Operator: "BSP / PPMI (QR Ph)", GUIs: []string{"com.p2pqrpay", "ph.ppmi.p2m", "ph.ppmi"},
		Country: "PH", Currency: "608",
		Source: "BSP QR Ph P2P (com.p2pqrpay) and P2M (ph.ppmi.p2m) GUIs from public generators — inferred, not checked against the standard"},
	{Name: "unionpay", Operator: "UnionPay International", GUIs: []string{"A000000333"}, IDs: [2]int{15, 16},
		Source: "EMVCo MPM spec (merchant account information id allocation): ids 15-16 reserved for UnionPay; AID RID A000000333 — documented"},
	{Name: "visa", Operator: "Visa", IDs: [2]int{2, 3}, Source: "EMVCo MPM spec (merchant account information id allocation): ids 02-03 reserved for Visa — documented"},
	{Name: "mastercard", Operator: "Mastercard", IDs: [2]int{4, 5}, Source: "EMVCo MPM spec (merchant account information id allocation): ids 04-05 reserved for Mastercard — documented"},
	{Name: "discover", Operator: "Discover", IDs: [2]int{9, 10}, Source: "EMVCo MPM spec (merchant account information id allocation): ids 09-10 reserved for Discover — documented"},
	{Name: "amex", Operator: "American Express", IDs: [2]int{11, 12}, Source: "EMVCo MPM spec (merchant account information id allocation): ids 11-12 reserved for Amex — documented"},
	{Name: "jcb", Operator: "JCB", IDs: [2]int{13, 14}, Source: "EMVCo MPM spec (merchant account information id allocation): ids 13-14 reserved for JCB — documented"},
}

// lookupAccountScheme returns the index in Schemes of the scheme an account belongs to, or -1.
func lookupAccountScheme(a *MerchantAccount) int {
	id := int(a.ID[0]-'0')*10 + int(a.ID[1]-'0')
	for i := range Schemes {
		s := &Schemes[i]
		if s.IDs[0] != 0 && id >= s.IDs[0] && id <= s.IDs[1] {
			return i
		}
		if a.GUI == "" {
			continue
		}
		for _, g := range s.GUIs {
			// An AID GUI may be followed by a PIX extension (e.g. A000000333010101).
			if strings.EqualFold(a.GUI, g) || (isAID(g) && len(a.GUI) > len(g) && strings.EqualFold(a.GUI[:len(g)], g)) {
				return i
			}
		}
	}
	return -1
}

// isAID reports whether g looks like an ISO 7816-5 AID (hex, starting A or D).
func isAID(g string) bool {
	if len(g) < 10 || (g[0] != 'A' && g[0] != 'D') {
		return false
	}
	for i := 0; i < len(g); i++ {
		c := g[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
