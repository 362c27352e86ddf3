package seeder

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/row"
)

// runCyclesUntil runs the seeder in cycles and stops it once cycle stop is
// seeded: the hook that would let cycle stop+1 begin ends the run instead.
func runCyclesUntil(t *testing.T, b *bus.Bus, c Config, stop int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var reached bool
	err := Run(ctx, Deps{Config: c, Bus: b, Log: zaptest.NewLogger(t),
		NextCycle: func(ctx context.Context, cur bus.Cycle) error {
			if cur.N < stop {
				return nil
			}
			reached = true
			cancel()
			return ctx.Err()
		}})
	if !reached || !errors.Is(err, context.Canceled) {
		t.Fatalf("run to cycle %d: reached %v, %v", stop, reached, err)
	}
}

func cycleRecord(t *testing.T, b *bus.Bus) bus.Cycle {
	t.Helper()
	var c bus.Cycle
	ok, err := b.GetJSON(context.Background(), bus.KeyCycle, &c)
	if err != nil || !ok {
		t.Fatalf("cycle record: %v, found %v", err, ok)
	}
	return c
}

// seededByCycle groups the stored seed targets' addresses by the cycle of
// their message id (seedt@N:i).
func seededByCycle(t *testing.T, b *bus.Bus) map[string][]uint32 {
	t.Helper()
	out := map[string][]uint32{}
	for _, m := range servicetest.Stored(t, b, bus.StreamTargets) {
		id := m.Header.Get(jetstream.MsgIDHeader)
		n, _, ok := strings.Cut(strings.TrimPrefix(id, "seedt@"), ":")
		if !ok || !strings.HasPrefix(id, "seedt@") {
			t.Fatalf("seed targets message id %q", id)
		}
		for _, x := range targets(t, []*jetstream.RawStreamMsg{m}) {
			a, err := row.ParseAddr(x.IP)
			if err != nil {
				t.Fatal(err)
			}
			if i, found := slices.BinarySearch(out[n], a); !found {
				out[n] = slices.Insert(out[n], i, a)
			}
		}
	}
	return out
}

// TestCyclesResume: a seeder restarted resumes the cycle the control bucket
// holds: a seeded cycle is not seeded again, the next cycle continues the
// same cyclic order where it stood, and a cycle whose seed was cut short is
// seeded again under the same message ids (de-duplicated).
func TestCyclesResume(t *testing.T) {
	c := Config{Allow: []string{"127.1.0.0/24"}, Ports: "80,443", Seed: 5, Batch: 16, Cycle: time.Hour, CycleSeedFrac: 0.25}
	pol, err := ipv4.LoadPolicy(c.Allow, "", "")
	if err != nil {
		t.Fatal(err)
	}
	const per = 64 // 0.25 x 256 addresses a cycle
	b := bustest.New(t)

	runCyclesUntil(t, b, c, 1)
	first := cycleRecord(t, b)
	if first.N != 1 || !first.SeedDone || first.Walked != 2*per || first.RandSeed != 5 {
		t.Fatalf("after cycles 0 and 1: %+v", first)
	}
	stored := len(servicetest.Stored(t, b, bus.StreamTargets))

	// Restarted: cycle 1 is seeded already; cycle 2 is the next stretch.
	runCyclesUntil(t, b, c, 2)
	second := cycleRecord(t, b)
	if second.N != 2 || !second.SeedDone || second.Walked != 3*per || second.RandSeed != first.RandSeed {
		t.Fatalf("after the restart: %+v", second)
	}
	by := seededByCycle(t, b)
	if len(by) != 3 {
		t.Fatalf("seeded cycles %v, want 0, 1 and 2", len(by))
	}
	seen := map[uint32]string{}
	for n, k := range []string{"0", "1", "2"} {
		want, err := CycleSample(pol, 5, uint64(n*per), per)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(by[k], want) {
			t.Fatalf("cycle %s seeded %d addresses, not the order's stretch from %d", k, len(by[k]), n*per)
		}
		for _, a := range by[k] {
			if prev, ok := seen[a]; ok {
				t.Fatalf("%s seeded in cycles %s and %s", row.FormatAddr(a), prev, k)
			}
			seen[a] = k
		}
	}
	perCycle := len(servicetest.Stored(t, b, bus.StreamTargets)) - stored
	if perCycle != stored/2 {
		t.Fatalf("the restart stored %d messages, want one cycle's %d (cycle 1 not again)", perCycle, stored/2)
	}

	// Cut short: cycle 2's record says its seed is not done; the restart
	// seeds it again, and the bus keeps one copy.
	second.SeedDone, second.Walked = false, 2*per
	if err := b.PutJSON(context.Background(), bus.KeyCycle, second); err != nil {
		t.Fatal(err)
	}
	before := len(servicetest.Stored(t, b, bus.StreamTargets))
	runCyclesUntil(t, b, c, 2)
	if got := cycleRecord(t, b); got.N != 2 || !got.SeedDone || got.Walked != 3*per {
		t.Fatalf("after re-seeding cycle 2: %+v", got)
	}
	if after := len(servicetest.Stored(t, b, bus.StreamTargets)); after != before {
		t.Fatalf("re-seeding cycle 2 stored %d more messages, want 0 (de-duplicated)", after-before)
	}
}
