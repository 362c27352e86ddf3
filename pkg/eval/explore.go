package eval

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gpsscan/gps/pkg/explore"
	"github.com/gpsscan/gps/pkg/features"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/schedule"
)

// explorer replays gps-stream-own (pkg/explore's Policy) from truth: the
// policy decides what to seed and sweep, the explorer answers the
// scheduler's work from the world, keeps the model of every find and
// predicts from all the found services of a host at once.
type explorer struct {
	w     *World
	p     Params
	pol   *explore.Policy
	skip  *explore.Seeded // seeded addresses, left out of later chunks
	m     *model.Model
	sched *schedule.Scheduler
	f     *finder
	c     *Curve
	by16  map[gps.Target][]gps.Target // (/16, port): truth services, by address
	byIP  map[uint32][]gps.Target     // truth services of an address, by port
	stats ExploreStats
}

// ExploreStats says what gps-stream-own did.
type ExploreStats struct {
	RandomSeeds, RandomHosts, RandomDups, HostSeeds, LearnedPorts int
	schedule.Stats
}

// Explore runs gps-stream-own; p.OwnSeed must be > 0.
func Explore(w *World, p Params) (*Curve, ExploreStats) {
	e := newExplorer(w, p)
	e.run()
	e.stats.Stats = e.sched.Stats()
	ps := e.pol.Stats()
	e.stats.RandomSeeds, e.stats.RandomHosts, e.stats.RandomDups, e.stats.HostSeeds, e.stats.LearnedPorts = ps.RandomSeeds, ps.RandomHosts, ps.RandomDups, ps.HostSeeds, ps.LearnedPorts
	return e.c, e.stats
}

// Policy is the gps-stream-own policy of p.
func (p Params) Policy() explore.Config {
	return explore.Config{OwnSeed: p.OwnSeed, Key: p.OwnSeedKey, RandShare: p.RandShare, SeedMax: p.SeedMax,
		HostShare: p.HostShare, HostWindow: p.HostWindow, PortMin: p.PortMin, ProbeFound: p.ProbeFound, HostOrder: p.HostOrder}
}

func newExplorer(w *World, p Params) *explorer {
	e := &explorer{w: w, p: p, m: model.New(), f: &finder{w: w, found: map[gps.Target]bool{}},
		by16: groupIndex(w, 16), byIP: map[uint32][]gps.Target{}, skip: &explore.Seeded{}}
	for t := range w.byTarget {
		e.byIP[t.Addr] = append(e.byIP[t.Addr], t)
	}
	for _, ts := range e.byIP {
		slices.SortFunc(ts, func(a, b gps.Target) int { return cmp.Compare(a.Port, b.Port) })
	}
	// The policy may send what gps-stream sends after the fixed seed plus
	// that seed's cost: the same probes_total.
	budget := p.Budget
	if budget > 0 {
		budget += w.SeedCost()
	}
	e.c = newCurve("gps-stream-own", 0, 0, budget)
	e.c.ownSeed = true
	sched, err := schedule.New(schedule.Config{Budget: budget, Rate: replayRate, Chunk: p.Chunk, PriorWeight: p.PriorWeight,
		NoLearning: p.NoLearning, Skip: e.skip, Clock: schedule.NewSimClock(time.Unix(0, 0))})
	if err != nil {
		panic(fmt.Sprintf("gps-stream-own: %v", err)) // Params.Validate keeps Chunk a power of two
	}
	e.sched = sched
	e.pol = explore.New(p.Policy(), newSpace(w), sched, e.skip, explore.Tokens{})
	return e
}

func (e *explorer) run() {
	e.pol.Start()
	var hits []gps.Target
	for {
		x, ok, err := e.sched.TryNext(context.Background())
		if err == nil && (!ok || x.Yield < e.p.Floor) && e.pol.Refill() {
			if ok {
				// x is released: probe it below, the seed comes next
			} else {
				continue
			}
		} else if err != nil || !ok || x.Yield < e.p.Floor {
			return // the budget is spent, nothing is left, or nothing left is worth a probe
		}
		hits = e.probe(x, hits[:0])
		e.sched.Report(x, len(hits))
		r := 0
		for _, t := range hits {
			if e.w.IsReal(t) {
				r++
			}
		}
		if !e.c.Spend(x.Probes, len(hits), r) {
			return
		}
		e.learn(x, hits)
		e.pol.MaybeSeed(e.c.End().Probes)
	}
}

// probe answers x from truth: the services it finds that were not found.
func (e *explorer) probe(x schedule.Work, hits []gps.Target) []gps.Target {
	e.pol.Released(x)
	switch x.Kind {
	case schedule.Seed:
		for _, t := range e.byIP[x.First] {
			if t.Port <= x.Port && e.f.mark(t) {
				hits = append(hits, t)
			}
		}
	case schedule.Chunk:
		ts := e.by16[gps.Target{Addr: x.First &^ 0xffff, Port: x.Port}]
		lo, _ := slices.BinarySearchFunc(ts, x.First, func(t gps.Target, a uint32) int { return cmp.Compare(t.Addr, a) })
		for _, t := range ts[lo:] {
			if t.Addr > x.Last {
				break
			}
			if !e.skip.Contains(t.Addr) && e.f.mark(t) {
				hits = append(hits, t)
			}
		}
	default:
		if t := gps.Target(x.Target); e.f.mark(t) {
			hits = append(hits, t)
		}
	}
	return hits
}

// learn takes the finds of x into the model and the policy, then
// predicts their hosts.
func (e *explorer) learn(x schedule.Work, hits []gps.Target) {
	for _, t := range hits {
		for _, i := range e.w.byTarget[t] {
			e.m.Add(&e.w.Truth[i])
		}
	}
	e.pol.Learn(x, hits)
	done := map[uint32]bool{}
	for _, t := range hits {
		if !done[t.Addr] {
			done[t.Addr] = true
			e.predict(t.Addr)
		}
	}
}

// predict queues the model's predictions for addr from all its found
// services at once (the best evidence for each port among them).
func (e *explorer) predict(addr uint32) {
	if !e.pol.Predictable(addr) {
		return
	}
	ports := e.pol.HostPorts(addr)
	dict := e.m.Dict()
	found := make([]model.Found, 0, len(ports))
	for _, port := range ports {
		var feats []features.ID
		for _, i := range e.w.byTarget[gps.Target{Addr: addr, Port: port}] {
			feats = dict.Of(feats, &e.w.Truth[i], false)
		}
		found = append(found, model.Found{Port: port, Feats: feats})
	}
	if !e.p.MultiPredict {
		found = found[len(found)-1:] // as gps-stream: from the newest service alone
	}
	for _, pr := range e.m.Predict(found, e.p.Hitrate) {
		if u := (gps.Target{Addr: addr, Port: pr.Port}); !e.f.found[u] {
			e.sched.Push(schedule.Target(u), pr.Hitrate, nil)
		}
	}
}
