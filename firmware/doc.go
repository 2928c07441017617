// Package firmware will own signed firmware updates: minisign/ed25519-signed manifests,
// streaming download with resume, A/B slots (Raspberry Pi tryboot or a file-slot
// backend), health check, commit or rollback, and anti-downgrade.
//
// # Caveats
//
// Nothing is implemented here yet: the package exists so the layout of the repository
// matches the design, and the import-flow test already keeps it away from sync's
// internals. Until it is built, posd cannot update itself.
package firmware
