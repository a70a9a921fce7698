package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a span of time. The file writes it as a Go duration string
// ("10s", "1m30s", "24h"; units ns, us, ms, s, m, h). A bare number is an
// error, because it has no unit.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// String formats d like time.Duration does ("1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes d as a duration string, so a Config marshaled with
// go-toml parses back to the same value.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText parses a duration string with time.ParseDuration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := parseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: write a number with a unit, like \"10s\", \"1m30s\" or \"24h\"", s)
	}
	return Duration(v), nil
}

// Size is a number of bytes. The file writes it as an integer (1048576) or
// as a string with a binary unit: "512B", "64KiB", "1MiB", "2GiB" (units are
// powers of 1024, matched without regard to case). Decimal units ("1MB") are
// refused because tools disagree on whether they mean 1000 or 1024.
type Size int64

// UnmarshalText parses a size string (see Size).
func (s *Size) UnmarshalText(b []byte) error {
	v, err := parseSize(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

var sizeUnits = []struct {
	suffix string
	shift  uint
}{
	{"kib", 10}, {"mib", 20}, {"gib", 30}, {"b", 0},
}

var errSizeSyntax = errors.New(`write an integer number of bytes, or a string with a binary unit like "64KiB", "1MiB" or "1GiB"`)

func parseSize(s string) (Size, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	shift := uint(0)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, shift = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || t == "" || t[0] == '+' || t[0] == '-' {
		return 0, fmt.Errorf("invalid size %q: %w", s, errSizeSyntax)
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return Size(n << shift), nil
}
