package daemon

import (
	"fmt"
	"strings"

	"github.com/walletless/walletless/config"
	"github.com/walletless/walletless/internal/secretfile"
)

// mqttPassword returns the broker password: mqtt.password, or the first line of
// mqtt.password_file, which is refused when its group or others can read it (with the
// chmod that fixes it).
func mqttPassword(cfg config.Config) (string, error) {
	if cfg.MQTT.PasswordFile == "" {
		return cfg.MQTT.Password, nil
	}
	raw, err := secretfile.Read(cfg.MQTT.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("daemon: mqtt.password_file: %w", err)
	}
	pw, _, _ := strings.Cut(string(raw), "\n")
	pw = strings.TrimRight(pw, "\r")
	if pw == "" {
		return "", fmt.Errorf("daemon: mqtt.password_file %s is empty", cfg.MQTT.PasswordFile)
	}
	return pw, nil
}
