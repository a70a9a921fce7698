package main

import "testing"

func TestGCPercentFor(t *testing.T) {
	for _, tc := range []struct {
		live, floor uint64
		want        int
	}{
		{0, 32 << 20, 100},         // nothing measured yet: the default
		{4 << 20, 32 << 20, 700},   // goal 32 MiB
		{16 << 20, 32 << 20, 100},  // 2x live reaches the floor
		{100 << 20, 32 << 20, 100}, // big heaps keep GOGC=100
	} {
		if got := gcPercentFor(tc.live, tc.floor); got != tc.want {
			t.Errorf("gcPercentFor(%d, %d) = %d, want %d", tc.live, tc.floor, got, tc.want)
		}
	}
}
