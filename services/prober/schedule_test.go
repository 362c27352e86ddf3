package prober

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// stepped answers nothing; each sweep (a chunk) waits for a step.
type stepped struct {
	counting
	step chan struct{}
}

func (s *stepped) Sweep(ctx context.Context, prefix uint32, bits int, port uint16, fn func(row.Row)) (uint64, error) {
	select {
	case <-s.step:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return s.counting.Sweep(ctx, prefix, bits, port, fn)
}

// TestPredictionMidSweepIsProbedWithinAChunk: a prediction that arrives
// while a /16 sweep runs is probed before the sweep's next chunk but one
// (the one a sender may have taken meanwhile), not after the sweep.
func TestPredictionMidSweepIsProbedWithinAChunk(t *testing.T) {
	b := bustest.New(t)
	resp := &stepped{step: make(chan struct{})}
	start(t, b, Deps{Config: Config{Allow: []string{"127.1.0.0/16"}, Concurrency: 1}, Responder: resp})
	publish(t, b, wire.TargetsSubject(wire.PhasePriors), "plan", targetsMsg(wire.PhasePriors, wire.Target{Prefix: "127.1.0.0/16", Port: 80, Hits: 10, SeedProbes: 2000}))
	resp.step <- struct{}{} // the first chunk
	servicetest.WaitFor(t, "the first chunk", func() bool { _, s := resp.calls(); return len(s) == 1 })
	publish(t, b, wire.PredictionsSubject(wire.PhasePriors), "pred", predictionMsg("127.1.200.9", 443, 0.5))
	// Once the prediction is in the prober (delivered, held unacked), the
	// chunk the sender took meanwhile ends, and the next work is the
	// prediction, not the sweep's next chunk: the sender would block in it.
	c, err := b.JS.Consumer(context.Background(), bus.StreamPredictions, Durable)
	if err != nil {
		t.Fatal(err)
	}
	servicetest.WaitFor(t, "the prediction held", func() bool {
		info, err := c.Info(context.Background())
		return err == nil && info.NumAckPending == 1
	})
	// Delivered is not yet pushed: the sender may take one more chunk
	// before the prediction is in its scheduler, never two.
	probed := func() bool { p, _ := resp.calls(); return len(p) == 1 }
	for range 2 {
		select {
		case resp.step <- struct{}{}:
		case <-time.After(time.Second):
		}
		if eventually(time.Second, probed) {
			break
		}
	}
	if p, sw := resp.calls(); len(p) != 1 || p[0] != "127.1.200.9:443" || len(sw) > 3 {
		t.Fatalf("probed %v after %d chunks, want the prediction after 3 at most", p, len(sw))
	}
	go func() {
		for range 256 {
			resp.step <- struct{}{}
		}
	}()
}

// TestBudget: --budget N stops sending after exactly N probes, the work of
// highest expected yield first: the likely prediction and the dense sweep's
// chunks before the unlikely prediction and the sparse sweep.
func TestBudget(t *testing.T) {
	b := bustest.New(t)
	// The first probe waits until every message is in the prober: then
	// the order is the scheduler's, not the order of arrival.
	resp := &gated{gate: make(chan struct{})}
	const budget = 1000
	st := start(t, b, Deps{Config: Config{Allow: []string{"127.1.0.0/16", "127.2.0.0/16"}, Budget: budget}, Responder: resp})
	publish(t, b, wire.TargetsSubject(wire.PhaseSeed), "first", targetsMsg(wire.PhaseSeed, wire.Target{IP: "127.2.0.1", Port: 2}))
	servicetest.WaitFor(t, "the first probe waiting", func() bool { return pending(t, b, bus.StreamTargets) == 1 })
	publish(t, b, wire.TargetsSubject(wire.PhasePriors), "plan", targetsMsg(wire.PhasePriors,
		wire.Target{Prefix: "127.2.0.0/16", Port: 22, Hits: 1, SeedProbes: 2000},    // 5e-4 a probe
		wire.Target{Prefix: "127.1.0.0/16", Port: 80, Hits: 100, SeedProbes: 2000})) // 5e-2 a probe
	publish(t, b, wire.PredictionsSubject(wire.PhasePriors), "likely", predictionMsg("127.2.9.9", 443, 0.9))
	publish(t, b, wire.PredictionsSubject(wire.PhasePriors), "unlikely", predictionMsg("127.2.9.10", 443, 1e-4))
	servicetest.WaitFor(t, "every message in the prober", func() bool {
		return pending(t, b, bus.StreamTargets) == 2 && pending(t, b, bus.StreamPredictions) == 2
	})
	close(resp.gate)
	servicetest.WaitFor(t, "the budget spent", func() bool { return st.BudgetSpent.Load() })
	if st.Probes.Load() != budget {
		t.Fatalf("%d probes sent, want the budget %d", st.Probes.Load(), budget)
	}
	probes, sweeps := resp.calls()
	for _, s := range sweeps {
		if !strings.HasPrefix(s, "127.1.") || !strings.HasSuffix(s, ":80") {
			t.Fatalf("swept %s before the dense sweep was done: sweeps %v", s, sweeps)
		}
	}
	if len(probes) < 2 || probes[1] != "127.2.9.9:443" {
		t.Fatalf("single probes %v: want the likely prediction right after the first", probes[:min(len(probes), 3)])
	}
	for _, p := range probes {
		if p == "127.2.9.10:443" || strings.HasSuffix(p, ":22") {
			t.Fatalf("low-yield work %s was probed within the budget", p)
		}
	}
}

// pending is the number of messages the prober's consumer on stream has
// delivered and not had acknowledged.
func pending(t *testing.T, b *bus.Bus, stream string) int {
	t.Helper()
	c, err := b.JS.Consumer(context.Background(), stream, Durable)
	if err != nil {
		return 0
	}
	info, err := c.Info(context.Background())
	if err != nil {
		return 0
	}
	return info.NumAckPending
}

// eventually polls cond every 5 ms for up to d and reports whether it held.
func eventually(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}
