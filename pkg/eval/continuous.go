package eval

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/schedule"
)

// continuous is the continuous policy, as the pipeline runs it: each cycle
// a fresh seed (the cyclic order goes on), a model equal to a batch build
// of the live inventory, and one scheduler ordering by yield the refresh of
// every held service, the plan's sweeps and the predictions made from every
// service that answers. A service that fails GoneAfter refreshes in a row
// is gone.
type continuous struct {
	base     *World
	p        Params
	cp       CycleParams
	inv      *inventory
	seeds    *seedWalk
	survival float64 // share of the cycle before's refreshes that answered
}

// initialSurvival is the refresh yield before any refresh was measured.
const initialSurvival = 0.95

func newContinuous(base *World, p Params, cp CycleParams, randSeed int64) (*continuous, error) {
	seeds, err := newSeedWalk(base, cp.SeedFrac, randSeed)
	if err != nil {
		return nil, fmt.Errorf("continuous policy: %w", err)
	}
	return &continuous{base: base, p: p, cp: cp, inv: newInventory(), seeds: seeds, survival: initialSurvival}, nil
}

// cycle runs cycle k on w, the world at cycle k (cycle 0: the world's own
// seed; later: the policy's own seed sample of that cycle).
func (c *continuous) cycle(w *World, k int) CycleRow {
	if k > 0 {
		w = cycleWorld(c.base, w.Truth, c.seeds.next(), c.cp.SeedFrac)
	}
	inv, step, hitrate := c.inv, c.p.Step, c.p.Hitrate
	seedCost := w.SeedCost()

	// The seed scans its addresses on every port: it finds what is there,
	// and every held service there that is not is a failed refresh. Its
	// finds are timed at the seed's middle.
	for t := range w.seedSet {
		inv.confirm(t, rowsOf(w, t), k, float64(seedCost)/2)
	}
	held := sortedHeld(inv)
	for _, t := range held {
		if w.seedAddr[t.Addr] && w.byTarget[t] == nil {
			inv.fail(t, c.cp.GoneAfter)
		}
	}

	// The model is a batch build of the live set.
	m := model.New()
	held = sortedHeld(inv)
	for _, t := range held {
		rs := inv.held[t].rows
		for i := range rs {
			m.Add(&rs[i])
		}
	}
	rows := m.Rows(hitrate)
	plan := gps.Plan(rows, step, hitrate)
	seedTargets := make([]gps.Target, 0, len(w.seedSet))
	for t := range w.seedSet {
		seedTargets = append(seedTargets, t)
	}
	slices.SortFunc(seedTargets, gps.CompareTargets)
	plan = append(plan, gps.Unexplained(rows, plan, seedTargets, step, hitrate)...)

	seedAddrs := make([]uint32, 0, len(w.seedAddr))
	for a := range w.seedAddr {
		seedAddrs = append(seedAddrs, a)
	}
	sched, err := schedule.New(schedule.Config{Budget: c.cp.Budget, Rate: replayRate, Chunk: c.p.Chunk, PriorWeight: c.p.PriorWeight,
		NoLearning: c.p.NoLearning, Skip: schedule.NewAddrs(seedAddrs), Clock: schedule.NewSimClock(time.Unix(0, 0))})
	if err != nil {
		panic(fmt.Sprintf("continuous: %v", err)) // Params.Validate keeps Chunk a power of two
	}
	// At cycle 0 the plan rests on the seed, a sample of SeedFrac of the
	// space; later on the inventory, which spans all of it.
	evidence := 1.0
	if k == 0 {
		evidence = w.SeedFrac
	}
	for _, g := range plan {
		err := sched.PushSweep(schedule.Sweep{Prefix: g.Prefix, Bits: g.Step, Port: g.Port,
			PriorHits: float64(g.Count), PriorProbes: evidence * float64(g.Cost())}, nil)
		if err != nil {
			panic(fmt.Sprintf("continuous: %v", err)) // a plan row is a valid sweep
		}
	}

	// Every held service the seed did not cover is refreshed.
	refreshYield := cmp.Or(c.cp.RefreshYield, c.survival)
	toRefresh := map[gps.Target]bool{}
	heldIdx := map[gps.Target][]uint32{} // (prefix/step, port): the addresses to refresh, sorted
	for _, t := range held {
		if inv.held[t].cycle == k || w.seedAddr[t.Addr] {
			continue
		}
		toRefresh[t] = true
		key := gps.Target{Addr: gps.Mask(t.Addr, step), Port: t.Port}
		heldIdx[key] = append(heldIdx[key], t.Addr)
		sched.Push(schedule.Target(t), refreshYield, nil)
	}
	answeredRefresh, failedRefresh := 0, 0
	refreshed := func(t gps.Target, ok bool) {
		if !toRefresh[t] {
			return
		}
		delete(toRefresh, t)
		if ok {
			answeredRefresh++
			return
		}
		failedRefresh++
		inv.fail(t, c.cp.GoneAfter)
	}

	groups := groupIndex(w, step)
	hosts := newHostTracker(w, m)
	onFound := func(t gps.Target, isNew, refresh bool) {
		if isNew {
			for _, i := range w.byTarget[t] {
				m.Add(&w.Truth[i])
			}
		}
		host, ok := hosts.answered(t, isNew)
		if !ok {
			return
		}
		if refresh && len(host.found) > PseudoPorts {
			// A pseudo-service host: the model keeps no rule of its, and
			// predicting its hundreds of ports again at every answer of
			// their refresh is quadratic.
			return
		}
		for _, pr := range m.Predict(host.found, hitrate) {
			u := gps.Target{Addr: t.Addr, Port: pr.Port}
			if inv.held[u] == nil {
				sched.Push(schedule.Target(u), pr.Hitrate, nil)
			}
		}
	}

	type answer struct {
		t              gps.Target
		isNew, refresh bool
	}
	var answered []answer
	var offset uint64 // the scheduler's probes so far
	for {
		x, ok, err := sched.TryNext(context.Background())
		if err != nil || !ok {
			break // the budget is spent, or nothing is left
		}
		at := float64(seedCost) + float64(offset) + float64(x.Probes)/2
		answered = answered[:0]
		hits := 0
		if x.Kind == schedule.Chunk {
			key := gps.Target{Addr: gps.Mask(x.First, step), Port: x.Port}
			ts := groups[key]
			lo, _ := slices.BinarySearchFunc(ts, x.First, func(t gps.Target, a uint32) int { return cmp.Compare(t.Addr, a) })
			for _, t := range ts[lo:] {
				if t.Addr > x.Last {
					break
				}
				if w.seedAddr[t.Addr] {
					continue // skipped by the chunk
				}
				isNew, refresh := !inv.confirm(t, rowsOf(w, t), k, at), toRefresh[t]
				refreshed(t, true)
				answered = append(answered, answer{t, isNew, refresh})
				if isNew {
					hits++
				}
			}
			hs := heldIdx[key]
			lo, _ = slices.BinarySearch(hs, x.First)
			for _, a := range hs[lo:] {
				if a > x.Last {
					break
				}
				if t := (gps.Target{Addr: a, Port: x.Port}); w.byTarget[t] == nil {
					refreshed(t, false)
				}
			}
		} else {
			t := gps.Target(x.Target)
			if w.byTarget[t] != nil {
				isNew, refresh := !inv.confirm(t, rowsOf(w, t), k, at), toRefresh[t]
				refreshed(t, true)
				answered = append(answered, answer{t, isNew, refresh})
				if isNew {
					hits++
				}
			} else {
				refreshed(t, false)
			}
		}
		sched.Report(x, hits)
		offset += x.Probes
		for _, a := range answered {
			onFound(a.t, a.isNew, a.refresh)
		}
	}
	if n := answeredRefresh + failedRefresh; n > 0 {
		c.survival = float64(answeredRefresh) / float64(n)
	}
	return inv.measure(w, k, PolicyContinuous, seedCost+offset, seedCost, 0)
}

// sortedHeld are the inventory's targets in address, port order.
func sortedHeld(inv *inventory) []gps.Target {
	ts := make([]gps.Target, 0, len(inv.held))
	for t := range inv.held {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, gps.CompareTargets)
	return ts
}
