// Package config is posd's one strict, versioned configuration schema: the file a
// technician writes, and later the signed configuration a fleet manager pushes, go
// through the same parser. Unknown fields and trailing data are errors; Validate says
// exactly which field is wrong; Default holds every default in one place.
//
// # Caveats
//
// Durations are JSON strings in Go syntax ("30s", "2m"). Command-line flags override
// the file; the daemon applies them after loading and validates again.
package config
