package bridge

import (
	"testing"
	"time"

	"github.com/nanoactor/nanoactor/config"
)

// The reconnect wait starts at backoff_min, doubles to backoff_max, stays
// within ±25% of its base, and a link that comes up resets it.
func TestBackoff(t *testing.T) {
	b := &Bridge{cfg: config.Bridge{BackoffMin: config.Duration(100 * time.Millisecond),
		BackoffMax: config.Duration(time.Second)}}
	b.backoff = b.cfg.BackoffMin.Std()
	bases := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, base := range bases {
		base *= time.Millisecond
		w := b.nextBackoff()
		if w < base*3/4 || w > base*5/4 {
			t.Fatalf("attempt %d: wait %v, want %v ±25%%", i, w, base)
		}
	}
}
