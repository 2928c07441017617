// Package broker runs an embedded MQTT broker (mochi-mqtt) on a loopback address. It
// exists for `posd -demo` and for unit tests: a real MQTT 3.1.1/5 broker in the same
// process, so the demo needs nothing but Go. Production terminals talk to a real
// broker (mosquitto, EMQX, HiveMQ, VerneMQ) instead.
//
// # Caveats
//
// The embedded broker allows every client and keeps no persistence: it is not an
// access-controlled production broker. deploy/ holds a mosquitto configuration with an
// ACL for that.
package broker
