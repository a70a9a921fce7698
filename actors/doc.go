// Package actors holds nanoactor's actors and the messages they exchange:
// the connection (pipe) actor, one per socket; the session actor, one per
// client identifier, which outlives connections; and the topic actor, which
// owns the subscription index and the retained messages and publishes an
// immutable snapshot that routers read without locks.
//
// Rules every actor here keeps (../shared/DESIGN.md):
//   - Receive never blocks: no I/O, no futures waited on, no lock waits.
//     Bytes for a client go to its connection's single writer
//     (transport.Outbound), whose Enqueue never blocks.
//   - Timers send messages (time.AfterFunc + Send); ReceiveTimeout is not
//     used.
//   - An impossible state fails closed: one log line, DISCONNECT where the
//     protocol allows, close the socket, keep the session.
package actors
