package config

import (
	"fmt"
	"slices"
	"time"
)

// Page is the clerk's counter page that posd serves at / (docs/clerk.md).
type Page struct {
	// Language is the page's default language (en, ko, ja, zh); empty means
	// printer.language. The clerk may switch on the page.
	Language string `json:"language,omitempty"`
	// Currencies are the keypad's ISO 4217 currencies, the first by default; empty
	// means KRW.
	Currencies []string `json:"currencies,omitempty"`
	// SessionTTL is how long a signed-in page stays signed in without use; zero
	// means 12 hours. Between 1s and 7 days.
	SessionTTL Duration `json:"session_ttl,omitempty"`
}

// MaxPageCurrencies bounds page.currencies.
const MaxPageCurrencies = 8

// validate checks the clerk page's settings: page.language and page.currencies.
func (a Page) validate() []error {
	var errs []error
	if a.Language != "" && !oneOf(a.Language, "en", "ko", "ja", "zh") {
		errs = append(errs, fmt.Errorf("config: page.language: %q is not one of en, ko, ja, zh", a.Language))
	}
	if len(a.Currencies) > MaxPageCurrencies {
		errs = append(errs, fmt.Errorf("config: page.currencies: %d currencies, at most %d", len(a.Currencies), MaxPageCurrencies))
	}
	for i, c := range a.Currencies {
		if len(c) != 3 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' || c[2] < 'A' || c[2] > 'Z' {
			errs = append(errs, fmt.Errorf("config: page.currencies[%d]: %q is not an ISO 4217 code such as KRW", i, c))
		} else if slices.Contains(a.Currencies[:i], c) {
			errs = append(errs, fmt.Errorf("config: page.currencies[%d]: %q is listed twice", i, c))
		}
	}
	if a.SessionTTL != 0 && (a.SessionTTL < Duration(time.Second) || a.SessionTTL > Duration(7*24*time.Hour)) {
		errs = append(errs, fmt.Errorf("config: page.session_ttl: %s is not between 1s and 168h", time.Duration(a.SessionTTL)))
	}
	return errs
}

// PageLanguage is the page's default language: page.language, else printer.language.
func (c Config) PageLanguage() string {
	if c.Page.Language != "" {
		return c.Page.Language
	}
	return c.Printer.Language
}

// PageCurrencies are the page keypad's currencies: page.currencies, else KRW.
func (c Config) PageCurrencies() []string {
	if len(c.Page.Currencies) > 0 {
		return slices.Clone(c.Page.Currencies)
	}
	return []string{"KRW"}
}
