package device

import "errors"

// Errors returned by this package. Each starts with "device: " and is wrapped with the
// details with %w, so errors.Is works.
var (
	// ErrNotFound means no serial port matched a Selector. It is transient: the device
	// may be unplugged and come back.
	ErrNotFound = errors.New("device: serial port not found")
	// ErrBadSelector means a Selector string could not be parsed. It is permanent: the
	// configuration must be fixed.
	ErrBadSelector = errors.New("device: bad serial port selector")
	// ErrNoGPIO means no GPIO line could be opened (no chip, no permission, or a pin
	// name that does not exist). Indicators degrade to a no-op.
	ErrNoGPIO = errors.New("device: GPIO unavailable")
)
