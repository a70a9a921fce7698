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
