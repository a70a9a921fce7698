// Package topic validates MQTT topic names and topic filters and matches
// topic names against many filters at once.
//
// Validation: ValidName checks the topic name of a PUBLISH, ValidFilter the
// topic filter of a SUBSCRIBE or UNSUBSCRIBE, ParseShared additionally splits
// a shared subscription "$share/{group}/{filter}". Failures match
// ErrInvalidName or ErrInvalidFilter (reason codes 0x90 and 0x8F), and also
// ErrMalformedUTF8 when the string is ill-formed UTF-8 or holds U+0000
// (Malformed Packet, 0x81). Lines that enforce a normative statement carry its
// [MQTT-x.y.z-n] tag; both the 3.1.1 and the 5.0 numbering are given where
// they differ.
//
// Matching: Match is the one-filter reference matcher. Index is the
// subscription index: one owner goroutine (a topic actor) applies
// Subscribe and Unsubscribe, and every change is published as an immutable
// Snapshot through an atomic pointer; any number of goroutines match
// PUBLISH topics against a Snapshot without locks and without allocating.
// Shared subscriptions are reported per group; choosing the member that
// receives a message is the broker's decision.
//
// The package is pure: no goroutines, no logging, no I/O, standard library
// only.
package topic
