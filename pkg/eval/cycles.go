package eval

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/lab"
)

// Policies over cycles.
const (
	PolicyAnew       = "gps-anew"    // GPS from scratch each cycle, fresh seed
	PolicyRefreshGPS = "refresh+gps" // probe what was known, then GPS from scratch
	PolicyContinuous = "continuous"  // one scheduler: refresh, seed, plan and predictions
)

// CyclePolicies are the policies over cycles, in the order they are reported.
var CyclePolicies = []string{PolicyAnew, PolicyRefreshGPS, PolicyContinuous}

// CycleParams configure the replay over cycles and the continuous policy.
type CycleParams struct {
	// Cycles limits the replay to cycles 0..Cycles; 0: every cycle the
	// world has.
	Cycles int
	// SeedFrac is the continuous policy's seed fraction in cycles after 0
	// (cycle 0 uses the world's seed); 0: DefaultSeedShare of the world's.
	SeedFrac float64
	// Budget caps the continuous policy's probes a cycle after the seed;
	// 0: none.
	Budget uint64
	// RefreshYield is the yield refresh probes are pushed at; 0: the share
	// of the refreshes of the cycle before that answered.
	RefreshYield float64
	// GoneAfter is the failed refreshes in a row after which a service is
	// gone and dropped; 0: DefaultGoneAfter.
	GoneAfter int
}

// Defaults of CycleParams.
const (
	DefaultSeedShare = 0.25
	DefaultGoneAfter = 1
)

// withDefaults fills the zero fields of cp for world w.
func (cp CycleParams) withDefaults(w *World) CycleParams {
	cp.SeedFrac = cmp.Or(cp.SeedFrac, DefaultSeedShare*w.SeedFrac)
	cp.GoneAfter = cmp.Or(cp.GoneAfter, DefaultGoneAfter)
	return cp
}

// Validate checks the parameters.
func (cp CycleParams) Validate() error {
	if cp.Cycles < 0 {
		return fmt.Errorf("--cycles %d: want >= 0", cp.Cycles)
	}
	if !(cp.SeedFrac >= 0 && cp.SeedFrac <= 1) {
		return fmt.Errorf("--cycle-seed-frac %g: want 0..1", cp.SeedFrac)
	}
	if !(cp.RefreshYield >= 0) {
		return fmt.Errorf("--refresh-yield %g: want >= 0", cp.RefreshYield)
	}
	if cp.GoneAfter < 0 {
		return fmt.Errorf("--gone-after %d: want >= 0", cp.GoneAfter)
	}
	return nil
}

// CyclesResult is the replay over cycles: one row per cycle and policy, in
// cycle order, then policy order.
type CyclesResult struct {
	Cycles   int        `json:"cycles"` // the last cycle replayed
	SeedFrac float64    `json:"continuous_seed_frac"`
	Budget   uint64     `json:"continuous_budget,omitempty"`
	Gone     int        `json:"gone_after"`
	Policies []string   `json:"policies"`
	Rows     []CycleRow `json:"rows"`
}

// seedSalt separates the cycles' seed permutation from the world's other
// random streams.
const seedSalt = 0x5eed_c1c1e

// ReplayCycles replays the world in dir, whose cycle 0 is base, over its
// cycles under every policy of CyclePolicies.
func ReplayCycles(dir string, base *World, p Params, cp CycleParams, log *zap.Logger) (*CyclesResult, error) {
	cp = cp.withDefaults(base)
	tl, err := lab.OpenTimeline(dir)
	if err != nil {
		return nil, fmt.Errorf("replay cycles: %w", err)
	}
	last := tl.Cycles()
	if cp.Cycles > 0 {
		last = min(last, cp.Cycles)
	}
	randSeed, _ := number(base.Meta.Params["seed"])
	anewSeeds, err := newSeedWalk(base, base.SeedFrac, int64(randSeed)^seedSalt)
	if err != nil {
		return nil, fmt.Errorf("replay cycles: %w", err)
	}
	cont, err := newContinuous(base, p, cp, int64(randSeed)^seedSalt)
	if err != nil {
		return nil, fmt.Errorf("replay cycles: %w", err)
	}
	res := &CyclesResult{Cycles: last, SeedFrac: cp.SeedFrac, Budget: cp.Budget, Gone: cp.GoneAfter, Policies: CyclePolicies}
	refresh := newInventory()
	var totals [3]uint64
	for k := 0; k <= last; k++ {
		start := time.Now()
		w := base
		if k > 0 {
			if _, err := tl.Next(); err != nil {
				return nil, fmt.Errorf("replay cycles: %w", err)
			}
			w = cycleWorld(base, tl.Services(), anewSeeds.next(), base.SeedFrac)
		}
		br := Batch(w, p)
		anew := anewCycle(w, br, k)
		rg := refreshCycle(refresh, w, br, k)
		cr := cont.cycle(w, k)
		for i, r := range []CycleRow{anew, rg, cr} {
			r.ProbesTotal += totals[i]
			totals[i] = r.ProbesTotal
			res.Rows = append(res.Rows, r)
			log.Info("cycle replayed", zap.Int("cycle", k), zap.String("policy", r.Policy), zap.Float64("coverage_real", r.CoverageReal),
				zap.Float64("stale", r.Stale), zap.Uint64("probes", r.Probes), zap.Float64("mean_age", r.MeanAge))
		}
		log.Info("cycle done", zap.Int("cycle", k), zap.Int("services", w.Services()), zap.Duration("elapsed", time.Since(start)))
	}
	return res, nil
}

// batchTime is the mean probe count, seed included, at which a gps-batch
// run found its services: the seed's in the middle of the seed, the
// others along the curve (evenly within a segment). Every find of the run
// is given this time: only the mean age is read from it.
func batchTime(w *World, c *Curve) float64 {
	seed := float64(w.SeedCost())
	sum := float64(c.Points[0].Found) * seed / 2
	for i := 1; i < len(c.Points); i++ {
		a, b := c.Points[i-1], c.Points[i]
		sum += float64(b.Found-a.Found) * (seed + float64(a.Probes+b.Probes)/2)
	}
	if n := c.End().Found; n > 0 {
		return sum / float64(n)
	}
	return 0
}

// anewCycle is gps-anew's cycle k: what GPS from scratch found.
func anewCycle(w *World, br *BatchResult, k int) CycleRow {
	inv := newInventory()
	at := batchTime(w, br.Curve)
	for t := range br.Found {
		inv.confirm(t, nil, k, at)
	}
	probes := w.SeedCost() + br.Curve.End().Probes
	return inv.measure(w, k, PolicyAnew, probes, w.SeedCost(), 0)
}

// refreshCycle is refresh+gps's cycle k: one probe to every service held
// at the end of the cycle before (in address order), those that do not
// answer dropped, then the cycle's GPS run br adds what it found.
func refreshCycle(inv *inventory, w *World, br *BatchResult, k int) CycleRow {
	known := make([]gps.Target, 0, len(inv.held))
	for t := range inv.held {
		known = append(known, t)
	}
	slices.SortFunc(known, gps.CompareTargets)
	for i, t := range known {
		if _, ok := w.byTarget[t]; ok {
			inv.confirm(t, nil, k, float64(i)+0.5)
		} else {
			delete(inv.held, t)
		}
	}
	refresh := uint64(len(known))
	at := float64(refresh) + batchTime(w, br.Curve)
	for t := range br.Found {
		inv.confirm(t, nil, k, at)
	}
	probes := refresh + w.SeedCost() + br.Curve.End().Probes
	return inv.measure(w, k, PolicyRefreshGPS, probes, w.SeedCost(), 0)
}
