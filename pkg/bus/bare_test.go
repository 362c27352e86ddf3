package bus_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
)

// TestBare: a bare message keeps no body, and its acks do what jetstream's
// do: InProgress keeps it from redelivery past AckWait, Nak redelivers it
// at once, DoubleAck is confirmed and moves the ack floor.
func TestBare(t *testing.T) {
	ctx := context.Background()
	b := bustest.New(t)
	for i := range 2 {
		if err := b.Publish(ctx, "gps.predictions.priors", "bare-"+strconv.Itoa(i), []byte(`{"x":1}`)); err != nil {
			t.Fatal(err)
		}
	}
	const wait = time.Second
	c, err := b.Consumer(ctx, bus.StreamPredictions, "bare", nil, 0, 10, bus.WithAckWait(wait))
	if err != nil {
		t.Fatal(err)
	}
	next := func() jetstream.Msg {
		t.Helper()
		msg, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	first := next()
	m := bus.Bare(first, b.NC)
	if m.Data() != nil || m.Headers() != nil || m.Subject() != "gps.predictions.priors" || m.Reply() != first.Reply() {
		t.Fatalf("bare message: data %q, headers %v, subject %q, reply %q", m.Data(), m.Headers(), m.Subject(), m.Reply())
	}
	if _, err := m.Metadata(); !errors.Is(err, bus.ErrBare) {
		t.Fatalf("Metadata: %v, want ErrBare", err)
	}
	// Kept in progress past AckWait: the next delivery is the second
	// message, not the first again.
	for range 3 {
		time.Sleep(wait / 2)
		if err := m.InProgress(); err != nil {
			t.Fatal(err)
		}
	}
	second := next()
	if md, _ := second.Metadata(); md.Sequence.Stream != 2 || md.NumDelivered != 1 {
		t.Fatalf("after InProgress: delivery %+v, want stream seq 2 delivered once", md)
	}
	// Nak: delivered again at once.
	if err := bus.Bare(second, b.NC).Nak(); err != nil {
		t.Fatal(err)
	}
	again := next()
	if md, _ := again.Metadata(); md.Sequence.Stream != 2 || md.NumDelivered != 2 {
		t.Fatalf("after Nak: delivery %+v, want stream seq 2 delivered twice", md)
	}
	for _, msg := range []jetstream.Msg{first, again} {
		if err := bus.Bare(msg, b.NC).DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.AckFloor.Stream != 2 || info.NumAckPending != 0 {
		t.Fatalf("after DoubleAck: ack floor %d, %d pending; want 2, 0", info.AckFloor.Stream, info.NumAckPending)
	}
}
