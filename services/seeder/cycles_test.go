package seeder

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
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
	if !reached || err != nil {
		t.Fatalf("run to cycle %d: reached %v, %v (a stop is not an error)", stop, reached, err)
	}
}

// TestCycleAdvance: a receive on Advance begins the next cycle at once,
// long before the cycle's length is up, and a stop while the seeder waits
// for the next cycle ends it cleanly.
func TestCycleAdvance(t *testing.T) {
	c := Config{Allow: []string{"127.1.0.0/24"}, Ports: "80", Seed: 5, Batch: 16, Cycle: time.Hour, CycleSeedFrac: 0.25}
	b := bustest.New(t)
	probeAll(t, b)
	advance := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Deps{Config: c, Bus: b, Log: zaptest.NewLogger(t), Advance: advance}) }()
	var c0 bus.Cycle
	servicetest.WaitFor(t, "cycle 0 seeded", func() bool {
		ok, err := b.GetJSON(ctx, bus.KeyCycle, &c0)
		return err == nil && ok && c0.SeedDone
	})
	advance <- struct{}{}
	servicetest.WaitFor(t, "cycle 1 seeded", func() bool {
		var c1 bus.Cycle
		ok, err := b.GetJSON(ctx, bus.KeyCycle, &c1)
		return err == nil && ok && c1.N == 1 && c1.SeedDone
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("stopped while waiting for cycle 2: %v, want nil", err)
	}
	if got := cycleRecord(t, b); got.N != 1 || !got.Started.After(c0.Started) {
		t.Fatalf("after the advance and the stop: %+v", got)
	}
}

// prober stands in for the probers: it acks every targets message on
// their consumer (as a prober does once the results are stored) until the
// test ends, and keeps a copy of each (TARGETS is a work queue: an acked
// message leaves the stream).
type prober struct {
	mu   sync.Mutex
	msgs []*jetstream.RawStreamMsg
}

func probeAll(t *testing.T, b *bus.Bus) *prober {
	t.Helper()
	p := &prober{}
	ctx, cancel := context.WithCancel(context.Background())
	cons, err := b.Consumer(ctx, bus.StreamTargets, bus.ProberConsumer, []string{wire.TargetsPrefix + ">"}, 0, 1024)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		p.mu.Lock()
		p.msgs = append(p.msgs, &jetstream.RawStreamMsg{Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		p.mu.Unlock()
		_ = m.DoubleAck(ctx)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Stop(); cancel() })
	return p
}

// probed is every targets message acked so far.
func (p *prober) probed() []*jetstream.RawStreamMsg {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.msgs)
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
func seededByCycle(t *testing.T, msgs []*jetstream.RawStreamMsg) map[string][]uint32 {
	t.Helper()
	out := map[string][]uint32{}
	for _, m := range msgs {
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
	p := probeAll(t, b)

	runCyclesUntil(t, b, c, 1)
	first := cycleRecord(t, b)
	if first.N != 1 || !first.SeedDone || first.Walked != 2*per || first.RandSeed != 5 {
		t.Fatalf("after cycles 0 and 1: %+v", first)
	}
	stored := len(p.probed())

	// Restarted: cycle 1 is seeded already; cycle 2 is the next stretch.
	runCyclesUntil(t, b, c, 2)
	second := cycleRecord(t, b)
	if second.N != 2 || !second.SeedDone || second.Walked != 3*per || second.RandSeed != first.RandSeed {
		t.Fatalf("after the restart: %+v", second)
	}
	by := seededByCycle(t, p.probed())
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
	perCycle := len(p.probed()) - stored
	if perCycle != stored/2 {
		t.Fatalf("the restart stored %d messages, want one cycle's %d (cycle 1 not again)", perCycle, stored/2)
	}

	// Cut short: cycle 2's record says its seed is not done; the restart
	// seeds it again, and the bus keeps one copy.
	second.SeedDone, second.Walked = false, 2*per
	if err := b.PutJSON(context.Background(), bus.KeyCycle, second); err != nil {
		t.Fatal(err)
	}
	before := len(p.probed())
	runCyclesUntil(t, b, c, 2)
	if got := cycleRecord(t, b); got.N != 2 || !got.SeedDone || got.Walked != 3*per {
		t.Fatalf("after re-seeding cycle 2: %+v", got)
	}
	if after := len(p.probed()); after != before {
		t.Fatalf("re-seeding cycle 2 stored %d more messages, want 0 (de-duplicated)", after-before)
	}
}

// TestCycleSeedAnswered: a cycle's seed published as targets is done (the
// cycle record's seed_done, the seed record the modeler plans on) only
// once the probers have answered it: acked every message of it.
func TestCycleSeedAnswered(t *testing.T) {
	c := Config{Allow: []string{"127.1.0.0/24"}, Ports: "80,443", Seed: 5, Batch: 16, Cycle: time.Hour, CycleSeedFrac: 0.25}
	b := bustest.New(t)
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		done <- Run(ctx, Deps{Config: c, Bus: b, Log: zaptest.NewLogger(t),
			NextCycle: func(ctx context.Context, _ bus.Cycle) error { cancel(); return ctx.Err() }})
	}()
	servicetest.WaitFor(t, "the seed published", func() bool { return len(servicetest.Stored(t, b, bus.StreamTargets)) == 8 })
	time.Sleep(time.Second) // ample for the seeder to record a seed it did not wait for
	if got := cycleRecord(t, b); got.SeedDone {
		t.Fatalf("cycle 0's seed is done before any prober answered it: %+v", got)
	}
	if _, err := readSeedRecord(b); err == nil {
		t.Fatal("the seed record is written before any prober answered the seed")
	}
	probeAll(t, b)
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if got := cycleRecord(t, b); !got.SeedDone {
		t.Fatalf("cycle 0's seed is not done once answered: %+v", got)
	}
	if _, err := readSeedRecord(b); err != nil {
		t.Fatalf("seed record once answered: %v", err)
	}
}

// readSeedRecord reads the seed record of the control bucket.
func readSeedRecord(b *bus.Bus) (wire.SeedDone, error) {
	var sd wire.SeedDone
	ok, err := b.GetJSON(context.Background(), bus.KeySeed, &sd)
	if err == nil && !ok {
		err = errors.New("no seed record")
	}
	return sd, err
}
