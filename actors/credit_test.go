package actors

import (
	"context"
	"testing"
	"time"
)

func TestCredit(t *testing.T) {
	var c credit
	c.init(100)
	if err := c.Acquire(context.Background(), 60); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- c.Acquire(context.Background(), 60) }()
	select {
	case err := <-got:
		t.Fatalf("acquired past the bound: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	c.Release(10) // 50 free: still not enough
	select {
	case err := <-got:
		t.Fatalf("acquired past the bound: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	c.Release(50)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	go func() { got <- c.Acquire(context.Background(), 100) }()
	time.Sleep(10 * time.Millisecond)
	c.cancel()
	if err := <-got; err == nil {
		t.Fatal("acquired after cancel")
	}
	c.Release(60)
	if err := c.Acquire(context.Background(), 1); err == nil {
		t.Fatal("acquired after cancel")
	}
}
