package prober

import (
	"context"
	"testing"
	"time"
)

// entered reports whether enter returns within a short wait (and then
// ends what it began with taken(n)).
func entered(w *window, n uint64) bool {
	ok := make(chan bool, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	go func() {
		if w.enter(ctx) != nil {
			ok <- false
			return
		}
		w.taken(n)
		ok <- true
	}()
	return <-ok
}

// TestWindow: at most the window is taken while work is in flight, no work
// is taken while a sender awaits predictions, and each wait doubles the
// window up to its max; a window of max 0 never waits.
func TestWindow(t *testing.T) {
	w := newWindow(256, 1024) // opened to 256 (a run starts at 1)
	if !entered(w, 256) {
		t.Fatal("the first work was not taken")
	}
	if entered(w, 1) {
		t.Fatal("work taken past the window of 256 in flight")
	}
	release := w.hold()
	w.done(256)
	if entered(w, 1) {
		t.Fatal("work taken while a sender awaits predictions")
	}
	release()
	if w.cur != 512 {
		t.Fatalf("window %d after a wait, want 512", w.cur)
	}
	if !entered(w, 500) {
		t.Fatal("work not taken in the grown window")
	}
	if !entered(w, 12) || entered(w, 1) {
		t.Fatal("the window of 512 let in more than 512 probes")
	}
	for range 4 {
		w.hold()()
	}
	if w.cur != 1024 {
		t.Fatalf("window %d, want its max 1024", w.cur)
	}
	open := newWindow(0, 0)
	open.hold()
	for range 3 {
		if !entered(open, 1<<20) {
			t.Fatal("an open window waited")
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := newWindow(1, 1).enter(ctx); err == nil {
		t.Fatal("enter after the end of ctx did not fail")
	}
}
