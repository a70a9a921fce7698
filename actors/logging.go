package actors

import (
	"context"
	"log/slog"
)

// quietHandler passes only records at or above min: protoactor's own
// logging is routed to our logger but kept quiet (warnings and errors).
type quietHandler struct {
	h   slog.Handler
	min slog.Level
}

func (q quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= q.min && q.h.Enabled(ctx, l)
}
func (q quietHandler) Handle(ctx context.Context, r slog.Record) error { return q.h.Handle(ctx, r) }
func (q quietHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return quietHandler{h: q.h.WithAttrs(a), min: q.min}
}
func (q quietHandler) WithGroup(n string) slog.Handler {
	return quietHandler{h: q.h.WithGroup(n), min: q.min}
}

// connLog is a connection's logger: its attributes (listener, remote,
// pipe, and client once the CONNECT is accepted) are put together only when
// a line is written, so an idle connection holds no logger of its own.
type connLog struct{ c *conn }

func (l connLog) Debug(msg string, args ...any) { l.log(slog.LevelDebug, msg, args) }
func (l connLog) Info(msg string, args ...any)  { l.log(slog.LevelInfo, msg, args) }

func (l connLog) log(level slog.Level, msg string, args []any) {
	c := l.c
	lg := c.b.log
	if !lg.Enabled(context.Background(), level) {
		return
	}
	attrs := make([]any, 0, 8+len(args))
	attrs = append(attrs, "listener", c.lis.name, "remote", c.remote, "pipe", c.id)
	if c.logClient {
		attrs = append(attrs, "client", c.clientID)
	}
	lg.Log(context.Background(), level, msg, append(attrs, args...)...)
}

// sessionLog is a session's logger: "client" is added when a line is
// written.
type sessionLog struct{ s *session }

func (l sessionLog) Debug(msg string, args ...any) { l.log(slog.LevelDebug, msg, args) }
func (l sessionLog) Warn(msg string, args ...any)  { l.log(slog.LevelWarn, msg, args) }
func (l sessionLog) Error(msg string, args ...any) { l.log(slog.LevelError, msg, args) }

func (l sessionLog) log(level slog.Level, msg string, args []any) {
	lg := l.s.b.log
	if !lg.Enabled(context.Background(), level) {
		return
	}
	lg.Log(context.Background(), level, msg, append([]any{"client", l.s.clientID}, args...)...)
}
