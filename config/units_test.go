package config

import (
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		ok   bool
	}{
		{"0", 0, true},
		{"1048576", 1 << 20, true},
		{"512B", 512, true},
		{"64KiB", 64 << 10, true},
		{"1MiB", 1 << 20, true},
		{"1 MiB", 1 << 20, true},
		{"1mib", 1 << 20, true},
		{"2GiB", 2 << 30, true},
		{"1MB", 0, false},
		{"1.5MiB", 0, false},
		{"-1", 0, false},
		{"+1", 0, false},
		{"MiB", 0, false},
		{"", 0, false},
		{"99999999999GiB", 0, false},
	} {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestDuration(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || d.Std() != 90*time.Second {
		t.Errorf("UnmarshalText(1m30s) = %v, %v", d, err)
	}
	if err := d.UnmarshalText([]byte("10")); err == nil {
		t.Error("UnmarshalText(10) succeeded: a duration needs a unit")
	}
	if b, _ := Duration(24 * time.Hour).MarshalText(); string(b) != "24h0m0s" {
		t.Errorf("MarshalText = %s", b)
	}
}
