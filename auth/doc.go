// Package auth keeps the bearer tokens of posd's local API: who may call it and in
// which role. A token is 256 random bits shown once, when it is made; the store keeps
// only its SHA-256, with a name and a role, in one JSON file in the data directory
// (mode 0600, replaced atomically through internal/secretfile). Check compares a
// presented token with every stored hash in constant time.
//
// Roles: a clerk starts, follows, cancels and reprints sales and reads the terminal's
// state; a manager may also refund, close the settlement batch and manage tokens.
//
// # Caveats
//
// The admin token file (admin.token) is the root of trust on the device: whoever can
// read the data directory can act as the manager. Deleting admin.token and restarting
// posd mints a new admin token and invalidates the old one; that is the recovery path
// for a lost or revoked admin token.
package auth
