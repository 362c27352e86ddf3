package bus_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
)

func TestParseLimits(t *testing.T) {
	const GiB = 1 << 30
	for _, tc := range []struct {
		name, age, size string
		want            map[string]bus.Limits
		bad             bool
	}{
		{name: "none"},
		{name: "zero is none", age: "0", size: "0", want: map[string]bus.Limits{bus.AllStreams: {}}},
		{name: "one age for all", age: "72h", want: map[string]bus.Limits{bus.AllStreams: {MaxAge: 72 * time.Hour}}},
		{name: "days", age: "7d", want: map[string]bus.Limits{bus.AllStreams: {MaxAge: 7 * 24 * time.Hour}}},
		{name: "per stream", age: "RESULTS=7d,predictions=48h", size: "TARGETS=50GiB,RESULTS=200G",
			want: map[string]bus.Limits{
				bus.StreamTargets:     {MaxBytes: 50 * GiB},
				bus.StreamResults:     {MaxAge: 7 * 24 * time.Hour, MaxBytes: 200e9},
				bus.StreamPredictions: {MaxAge: 48 * time.Hour},
			}},
		{name: "default and override", age: "24h,DEADLETTER=336h", size: "10GiB",
			want: map[string]bus.Limits{
				bus.AllStreams:       {MaxAge: 24 * time.Hour, MaxBytes: 10 * GiB},
				bus.StreamDeadLetter: {MaxAge: 336 * time.Hour, MaxBytes: 10 * GiB},
			}},
		{name: "units", size: "1536KiB", want: map[string]bus.Limits{bus.AllStreams: {MaxBytes: 1536 << 10}}},
		{name: "plain bytes", size: "1048576", want: map[string]bus.Limits{bus.AllStreams: {MaxBytes: 1 << 20}}},
		{name: "unknown stream", age: "NOPE=1h", bad: true},
		{name: "bad age", age: "soon", bad: true},
		{name: "negative age", age: "-1h", bad: true},
		{name: "sub-second age", age: "10ms", bad: true},
		{name: "bad size", size: "lots", bad: true},
		{name: "stream twice", size: "RESULTS=1G,results=2G", bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := bus.ParseLimits(tc.age, tc.size)
			if tc.bad {
				if !errors.Is(err, bus.ErrLimits) {
					t.Fatalf("err = %v, want ErrLimits", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestSetupLimits: the limits reach the streams, TARGETS refuses new
// messages when full (back-pressure) while the others drop their oldest,
// and a later Setup without limits lifts them.
func TestSetupLimits(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	limits := map[string]bus.Limits{
		bus.AllStreams:    {MaxAge: time.Hour},
		bus.StreamTargets: {MaxBytes: 1 << 20}, // no age: not even the one for all
		bus.StreamResults: {MaxAge: 5 * time.Minute, MaxBytes: 8 << 20},
	}
	b, err := bus.Connect(ctx, bus.Config{DataDir: dir, Listen: "127.0.0.1:-1", Name: t.Name(), Limits: limits}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := func(name string) jetstream.StreamConfig {
		s, err := b.JS.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return s.CachedInfo().Config
	}
	for _, tc := range []struct {
		stream  string
		age     time.Duration
		bytes   int64
		discard jetstream.DiscardPolicy
		dedup   time.Duration
	}{
		{bus.StreamTargets, 0, 1 << 20, jetstream.DiscardNew, 10 * time.Minute}, // the age for all does not apply
		{bus.StreamResults, 5 * time.Minute, 8 << 20, jetstream.DiscardOld, 5 * time.Minute},
		{bus.StreamPredictions, time.Hour, -1, jetstream.DiscardOld, 10 * time.Minute},
		{bus.StreamDeadLetter, time.Hour, -1, jetstream.DiscardOld, 10 * time.Minute},
	} {
		c := cfg(tc.stream)
		if c.MaxAge != tc.age || c.MaxBytes != tc.bytes || c.Discard != tc.discard || c.Duplicates != tc.dedup {
			t.Errorf("%s: max age %v bytes %d discard %v dedup %v; want %v %d %v %v", tc.stream, c.MaxAge, c.MaxBytes, c.Discard, c.Duplicates,
				tc.age, tc.bytes, tc.discard, tc.dedup)
		}
	}
	// A full TARGETS refuses: the publisher sees a transient error.
	data := make([]byte, 64<<10)
	var full error
	for i := range 40 {
		if _, err := b.JS.Publish(ctx, "gps.targets.seed", data, jetstream.WithMsgID(fmt.Sprint(i))); err != nil {
			full = err
			break
		}
	}
	if full == nil || !bus.Transient(full) {
		t.Fatalf("publishing into a full TARGETS: %v, want a transient error", full)
	}
	// A service started without limits lifts them (every service must be
	// given the same limits).
	b2, err := bus.Connect(ctx, bus.Config{URL: b.ClientURL(), Name: "other"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if err := b2.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if c := cfg(bus.StreamResults); c.MaxAge != 0 || c.MaxBytes != -1 || c.Duplicates != 10*time.Minute {
		t.Errorf("RESULTS without limits: max age %v bytes %d dedup %v", c.MaxAge, c.MaxBytes, c.Duplicates)
	}
}

func TestTransient(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{nats.ErrTimeout, true},
		{fmt.Errorf("publish x: %w", nats.ErrNoResponders), true},
		{context.DeadlineExceeded, true},
		{context.Canceled, false},
		{jetstream.ErrConsumerNotFound, false},
		{jetstream.ErrKeyNotFound, false},
		{jetstream.ErrKeyExists, false},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement"}, true},
		{&jetstream.APIError{Code: 409, ErrorCode: 10158, Description: "duplicate message id is in process"}, true},
		{&jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use"}, false},
		{nats.ErrConnectionClosed, false},
		{nats.ErrDisconnected, true},
	} {
		if got := bus.Transient(tc.err); got != tc.want {
			t.Errorf("Transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestRetry(t *testing.T) {
	ctx := context.Background()
	calls := 0
	err := bus.Retry(ctx, nil, "x", func(context.Context) error {
		calls++
		if calls < 3 {
			return nats.ErrNoResponders
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Retry = %v after %d calls, want nil after 3", err, calls)
	}
	calls = 0
	err = bus.Retry(ctx, nil, "x", func(context.Context) error {
		calls++
		return jetstream.ErrKeyNotFound
	})
	if !errors.Is(err, jetstream.ErrKeyNotFound) || calls != 1 {
		t.Fatalf("Retry = %v after %d calls, want ErrKeyNotFound after 1", err, calls)
	}
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err = bus.Retry(cctx, nil, "x", func(context.Context) error { return nats.ErrTimeout })
	if !errors.Is(err, nats.ErrTimeout) || cctx.Err() == nil {
		t.Fatalf("Retry = %v, want the last error once ctx ends", err)
	}
}
