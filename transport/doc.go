// Package transport moves bytes between nanoactor and its clients: listeners
// that yield ordered byte streams (net.Conn), and the write path of a
// connection. It knows nothing of actors and nothing of MQTT semantics.
//
// # One writer per connection
//
// Every byte sent to a client goes through the connection's Outbound: a
// queue of buffers bounded in bytes, drained by one writer goroutine that the
// Outbound starts and owns. The writer runs only while there is writing to
// do: it starts with the first buffer queued and exits after a second with
// nothing to write, so an idle connection costs no goroutine. On a quiet
// TCP connection the goroutine that queues a buffer writes it at once, with
// one non-blocking write, while no writer goroutine is writing (see
// Outbound). The contract:
//
//   - Enqueue, EnqueueBatch, CloseAfter, Close and CloseWith may be called
//     from any goroutine and never block on the network or on the writer.
//   - A buffer accepted by Enqueue belongs to the writer: the caller must not
//     read, write or reuse it. Options.Release, if set, gets it back exactly
//     once, after it was written or discarded. A buffer whose Enqueue
//     returned an error still belongs to the caller.
//   - Past Options.MaxPending bytes, Enqueue returns ErrQueueFull and queues
//     nothing; the caller's policy decides (drop QoS 0, keep QoS 1/2 for
//     redelivery, or disconnect with ReasonSlowConsumer).
//   - A nil or empty buffer is an impossible state: the Outbound fails
//     closed (ReasonInvalidBuffer). It never logs and continues.
//   - The writer takes everything queued at each wake-up and writes it with
//     one vectored write (net.Buffers) under one write deadline; on kernel
//     sockets that is one writev per up to 1024 buffers. Connections without
//     vectored writes (TLS, WebSocket, pipes) get small buffers copied into
//     64 KiB segments instead, so they too pay one Write per many messages.
//   - A write error, a missed deadline or a panic in the writer closes the
//     connection with a recorded CloseReason; the first reason recorded wins.
//     Closing sets the net.Conn's deadlines in the past (so a blocked Read
//     returns at once) and leaves net.Conn.Close to the exiting writer, since
//     a TLS Close may block writing close_notify. Done is closed when the
//     writer has exited, the net.Conn is closed and every accepted buffer was
//     written or released.
//   - The Outbound does not run timers: the owner's watchdog asks Stalled
//     (bytes pending and no progress for a bounded time) and closes with
//     ReasonStalled.
//   - The Outbound does not log. The owner logs the recorded reason once,
//     with the client id.
//
// # Goroutines
//
// Each goroutine has one owner and one exit path:
//   - the writer goroutine of an Outbound: owned by the Outbound, at most one
//     at a time; exits idle after idleExit with nothing to write (the next
//     Enqueue starts another), or after a close (any cause), closing Done;
//   - the goroutine running Server.Serve: owned by the caller, returns when
//     its listener is closed;
//   - one goroutine per accepted connection running Server.Handle: owned by
//     the Server, exits when Handle returns; Server.Wait waits for them.
//     A handler may park its connection instead (Server.Park, Linux, plain
//     TCP and Unix sockets): it returns a *Park and the connection keeps its
//     slot with no goroutine; when it is readable, woken, or its deadline
//     (Park.WakeAt) passes, the Server runs the Park's resume on a new
//     goroutine, which is the handler from then on;
//   - the poller goroutine of a Server (one epoll instance for every parked
//     connection, and a heap of their deadlines): owned by the Server,
//     started by the first Park, exits in Wait once every connection is
//     finished.
//
// # TLS, WebSocket and QUIC
//
// ListenTLS, ListenWS and ListenQUIC (tls.go, ws.go, quic.go) yield the same
// net.Conn byte streams; the connection's goroutine calls Handshake first,
// then reads identity with ConnectionState and PeerIdentity (identity.go).
//
// # Fault injection
//
// Options.Faults (a *FaultPlan, nil in production) lets tests make a
// connection's send path fail, panic, hand over an invalid buffer or stall,
// to prove that only that connection is closed and the rest keeps serving.
package transport
