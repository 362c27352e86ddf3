package bus_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
)

// TestEachMessage reads a stream longer than one fetch, in order, and an
// empty one.
func TestEachMessage(t *testing.T) {
	ctx := context.Background()
	b := bustest.New(t)
	const n = 2500 // more than the 1000 messages of one fetch
	a := b.Async(500)
	for i := range n {
		if err := a.Publish(ctx, "gps.results.seed", "m"+strconv.Itoa(i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	next := 0
	if err := b.EachMessage(ctx, bus.StreamResults, func(d []byte) {
		if string(d) != strconv.Itoa(next) {
			t.Fatalf("message %d is %q", next, d)
		}
		next++
	}); err != nil {
		t.Fatal(err)
	}
	if next != n {
		t.Fatalf("read %d messages, want %d", next, n)
	}
	if err := b.EachMessage(ctx, bus.StreamPredictions, func([]byte) { t.Fatal("a message in an empty stream") }); err != nil {
		t.Fatal(err)
	}
}
