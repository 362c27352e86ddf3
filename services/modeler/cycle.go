package modeler

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/wire"
)

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
