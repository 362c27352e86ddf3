package modeler

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/internal/resultpipe"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/wire"
)

// cycleSeedLead is how long before its cycle's start (the seeder's clock)
// a cycle's seed results are looked for on the stream (the server's
// clock): a bound on the clocks' skew. What is read is kept only if it is
// of the cycle (wire.Result.Cycle), so reading early costs time only.
const cycleSeedLead = 10 * time.Minute

// In a continuous run (seeder --cycle) every cycle's seed ends with a new
// seed record; the modeler then publishes a new plan from its model as it
// is (everything known), once per cycle: bus.PlanCycle at KeyPlanCycle says
// which cycle was planned last, so a restart does not plan a cycle twice.

// currentCycle reads the seeder's cycle record; ok is false outside a
// continuous run.
func (s *modeler) currentCycle(ctx context.Context) (c bus.Cycle, ok bool, err error) {
	ok, err = s.Bus.GetJSON(ctx, bus.KeyCycle, &c)
	if err != nil {
		return c, false, fmt.Errorf("plan: %w", err)
	}
	return c, ok, nil
}

// cycleDue reports whether a new cycle's seed is done and its plan not
// made yet; it then lets the next plan through.
func (s *modeler) cycleDue(ctx context.Context) (bool, error) {
	c, ok, err := s.currentCycle(ctx)
	if err != nil || !ok || !c.SeedDone {
		return false, err
	}
	var pc bus.PlanCycle
	found, err := s.Bus.GetJSON(ctx, bus.KeyPlanCycle, &pc)
	if err != nil {
		return false, fmt.Errorf("plan cycle: %w", err)
	}
	if found && pc.N >= c.N {
		return false, nil
	}
	s.Log.Info("new cycle: planning again", zap.Int("cycle", c.N), zap.Uint64("seq", s.Seq))
	s.planned, s.cycleN = false, c.N
	s.st.Planned.Store(false)
	return true, nil
}

// recordPlanCycle records that cycle n is planned.
func (s *modeler) recordPlanCycle(ctx context.Context, n int, t time.Time) error {
	if err := s.Bus.PutJSON(ctx, bus.KeyPlanCycle, bus.PlanCycle{V: wire.Version, N: n, Time: t}); err != nil {
		return fmt.Errorf("record plan cycle %d: %w", n, err)
	}
	return nil
}

// cycleSeed reads cycle c's seed results off RESULTS: the services the
// cycle's plan explains with extra sweeps, on the hosts its sweeps leave
// out (the seed probed every port of them). It reads the stream, not the
// modeler's memory, so a modeler restarted mid-cycle plans the same. The
// targets are in address, port order, distinct.
func (s *modeler) cycleSeed(ctx context.Context, c bus.Cycle) ([]gps.Target, error) {
	start := c.Started.Add(-cycleSeedLead)
	var seed []gps.Target
	err := s.Bus.CatchUp(ctx, bus.StreamResults, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{wire.ResultsSubject(wire.PhaseSeed)},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy, OptStartTime: &start},
		func(msg jetstream.Msg, _ *jetstream.MsgMetadata) (bool, error) {
			// A bad message was dead-lettered whole by the live run:
			// skipped whole here too.
			rs, err := resultpipe.DecodeMessage(msg.Data(), s.Policy)
			if err != nil {
				return true, nil
			}
			for _, r := range rs {
				if r.Cycle == c.N && !r.Gone {
					seed = append(seed, gps.Target{Addr: r.Svc.Addr, Port: uint16(r.Svc.Port)})
				}
			}
			return true, nil
		}, jetstream.PullMaxMessages(s.cfg.Fetch))
	if err != nil {
		return nil, fmt.Errorf("read cycle %d seed: %w", c.N, err)
	}
	slices.SortFunc(seed, gps.CompareTargets)
	return slices.Compact(seed), nil
}

// targetAddrs are the distinct addresses of ts, which are sorted.
func targetAddrs(ts []gps.Target) []uint32 {
	addrs := make([]uint32, 0, len(ts))
	for _, t := range ts {
		if n := len(addrs); n == 0 || addrs[n-1] != t.Addr {
			addrs = append(addrs, t.Addr)
		}
	}
	return addrs
}
