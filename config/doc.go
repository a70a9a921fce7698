// Package config loads and validates the broker's TOML configuration file.
//
// # Contract
//
// Load(path) and Parse(name, data) return either a complete *Config, every
// default applied and every value checked, or a nil Config and an error
// listing every problem found. Nothing else in the broker checks
// configuration values: code that receives a *Config from this package may
// rely on every documented range and relation. Default() is the
// configuration of a broker started without a file, and DefaultFile() the
// commented file that documents every key (`nanoactor config default`
// prints it); an empty file parses to exactly Default().
//
// A Config is plain data with toml tags. This package does not change it
// after returning it, keeps no reference to it, and starts no goroutine;
// Parse and Validate touch no file, Load reads the configuration file and
// opens (then closes) the certificate files it names.
//
// # Errors
//
// Every problem is an *Error printed as
//
//	file:line: key: message
//	nanoactor.toml:12: mqtt.max_packet_size: must be between 16 and 268435455, got 0
//
// where key is the dotted path of the key, with arrays of tables indexed
// from 0 in file order (listener[1].bind). The problems are returned
// together as Errors, ordered by line. They cover:
//
//   - TOML syntax: only the first, since parsing cannot go on past it;
//   - unknown keys and tables (go-toml strict mode), with a suggestion when
//     a known key is close;
//   - values of the wrong type (go-toml's DecodeError), a key written twice,
//     a bad duration or size string, a bare number for a duration;
//   - value checks (Validate): ranges, enumerations, bind addresses,
//     duplicate listener names and binds, the files a protocol requires,
//     protocols this build does not serve (SupportedProtocols), and the
//     relations between keys (connect_packet_max <= max_packet_size, ...).
//
// go-toml stops at the first type error; Parse then blanks the offending
// expression (keeping line numbers) and decodes again, so every one is
// reported. Lines come from an index built with go-toml's unstable parser.
//
// # Units
//
// Durations are TOML strings parsed with time.ParseDuration ("10s", "24h");
// a bare number is refused rather than read as nanoseconds. Sizes are bytes:
// an integer, or a string with a binary unit ("64KiB", "1MiB"). Keepalives
// are integer seconds, as on the wire. Every default is an exported Default*
// constant.
package config
