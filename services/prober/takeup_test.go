package prober

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/wire"
)

// TestTakeUpCycle: a prober that starts in the middle of a cycle (a
// restart) is in that cycle before it pulls any work: its world answers
// from that cycle and its results carry it, not cycle 0 until its cycle
// watch has caught up with RESULTS. Outside cycles it stays at 0.
func TestTakeUpCycle(t *testing.T) {
	dir, _ := labtest.WriteWorld(t, lab.Config{Seed: 1, Hosts: 500, Slash16s: 1, SeedFrac: 0.2, Cycles: 2, Churn: 3})
	b := bustest.New(t)
	ctx := context.Background()
	start := func() (*prober, *WorldResponder) {
		w, err := NewWorldResponder(dir, WorldOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p := &prober{bus: b, log: zap.NewNop(), st: &Stats{}, resp: w}
		if err := newRefresher(p).takeUp(ctx); err != nil {
			t.Fatal(err)
		}
		return p, w
	}
	if p, w := start(); w.Cycle() != 0 || p.cycleN.Load() != 0 {
		t.Fatalf("no cycle record: the prober took up cycle %d, its world %d", p.cycleN.Load(), w.Cycle())
	}
	if err := b.PutJSON(ctx, bus.KeyCycle, bus.Cycle{V: wire.Version, N: 2, Started: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if p, w := start(); w.Cycle() != 2 || p.cycleN.Load() != 2 {
		t.Fatalf("in cycle 2: the prober took up cycle %d, its world %d", p.cycleN.Load(), w.Cycle())
	}
}
