// Package integration holds black-box tests: the real broker, started
// from a TOML configuration through the public surface (config.Parse,
// supervisor.Start), over real loopback sockets, driven by independent
// clients: paho.golang (v5), paho.mqtt.golang (3.1 / 3.1.1), the
// mosquitto_pub / mosquitto_sub programs and MQTT.js where installed, and
// raw bytes for hostile input.
//
// Tests that need an external program skip with a message naming it when
// it is missing, unless NANOACTOR_REQUIRE_PEERS=1 (set by .ci/run), which
// turns the skip into a failure.
package integration
