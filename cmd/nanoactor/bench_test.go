package main

import (
	"strings"
	"testing"
	"time"
)

func TestBenchPubSub(t *testing.T) {
	h, p := startTestBroker(t)
	for _, q := range []string{"0", "1", "2"} {
		t.Run("q"+q, func(t *testing.T) {
			code, out, errs := runCmd("bench", "pubsub", "-h", h, "-p", p, "-c", "2", "--subs", "2", "-d", "1", "-I", "2", "-q", q, "-V", "5", "-t", "b"+q+"/%i", "--filter", "b"+q+"/#")
			if code != 0 {
				t.Fatalf("exit %d: %s\n%s", code, errs, out)
			}
			for _, want := range []string{"lost=0 duplicated=0 out_of_order=0", "latency: p50=", "sent: ", "received: "} {
				if !strings.Contains(out, want) {
					t.Fatalf("output lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "received: 0 msgs") {
				t.Fatalf("nothing received:\n%s", out)
			}
		})
	}
}

func TestBenchConnAndCount(t *testing.T) {
	h, p := startTestBroker(t)
	code, out, errs := runCmd("bench", "conn", "-h", h, "-p", p, "-c", "5", "-i", "1")
	if code != 0 || !strings.Contains(out, "bench conn: 5 connections") {
		t.Fatalf("conn: exit %d: %s\n%s", code, errs, out)
	}
	code, out, errs = runCmd("bench", "pubsub", "-h", h, "-p", p, "-c", "3", "-n", "50", "-I", "0", "-q", "1", "-t", "n/%i", "--filter", "n/#")
	if code != 0 || !strings.Contains(out, "sent: 150 msgs") || !strings.Contains(out, "received: 150 msgs") || !strings.Contains(out, "lost=0 duplicated=0 out_of_order=0") {
		t.Fatalf("count: exit %d: %s\n%s", code, errs, out)
	}
}

func TestSeqTrack(t *testing.T) {
	tr := &seqTrack{missing: map[uint64]struct{}{}}
	for _, s := range []uint64{1, 2, 4, 3, 3, 6} {
		tr.see(s)
	}
	if len(tr.missing) != 1 || tr.ooo != 1 || tr.dup != 1 || tr.last != 6 {
		t.Fatalf("%+v", tr)
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.record(int64(i) * int64(time.Microsecond))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Microsecond}, {0.99, 990 * time.Microsecond}} {
		got := h.quantile(c.q)
		if got > c.want || float64(got) < float64(c.want)*0.96 {
			t.Errorf("q%.2f = %v, want about %v", c.q, got, c.want)
		}
	}
	for v := int64(0); v < 1<<20; v += 7 {
		if l := lower(bucket(v)); l > v || (v >= 64 && float64(v-l) > float64(v)*0.04) {
			t.Fatalf("bucket(%d) lower %d", v, l)
		}
	}
}

func TestNumberUnits(t *testing.T) {
	got := strings.Join(numberUnits([]string{"-i", "5", "-I=10", "-d", "2", "-c", "3", "-d", "1m"}), " ")
	if want := "-i 5ms -I=10ms -d 2s -c 3 -d 1m"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
