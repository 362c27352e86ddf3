package bus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
)

func TestPublishDedupAndDeadLetter(t *testing.T) {
	ctx := context.Background()
	b := bustest.New(t)
	// Setup twice is fine.
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := b.Publish(ctx, "gps.results.seed", "same-id", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	s, _ := b.JS.Stream(ctx, bus.StreamResults)
	info, _ := s.Info(ctx)
	if info.State.Msgs != 1 {
		t.Fatalf("%d messages stored for one Nats-Msg-Id, want 1", info.State.Msgs)
	}
	c, err := b.Consumer(ctx, bus.StreamResults, "t", nil, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.DeadLetter(ctx, "tester", msg, errors.New("broken")); err != nil {
		t.Fatal(err)
	}
	d, _ := b.JS.Stream(ctx, bus.StreamDeadLetter)
	m, err := d.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get(bus.HeaderReason) != "broken" || m.Header.Get(bus.HeaderSubject) != "gps.results.seed" || m.Subject != "gps.dlq.tester" {
		t.Fatalf("dead letter %s %v", m.Subject, m.Header)
	}
	// Async batch with de-duplication.
	a := b.Async(100)
	for i := 0; i < 250; i++ {
		if err := a.Publish(ctx, "gps.predictions.priors", string(rune('a'+i%50)), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p, _ := b.JS.Stream(ctx, bus.StreamPredictions)
	pi, _ := p.Info(ctx)
	if pi.State.Msgs != 50 {
		t.Fatalf("%d predictions stored, want 50 distinct ids", pi.State.Msgs)
	}
}
