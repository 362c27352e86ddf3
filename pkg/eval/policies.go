package eval

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/schedule"
)

// Params are the GPS parameters and the probe budget of a replay, and how
// gps-stream's scheduler cuts and learns (see schedule.Config).
type Params struct {
	Hitrate     float64
	Step        int
	Budget      uint64  // probes after the seed; 0: unlimited
	Chunk       uint64  // addresses per sweep chunk, a power of two; 0: schedule.DefaultChunk
	PriorWeight float64 // 0: 1
	NoLearning  bool

	// gps-stream-own (Explore), run when OwnSeed > 0: the share of the
	// space it seeds at the start, in a cyclic order keyed by OwnSeedKey.
	OwnSeed    float64
	OwnSeedKey uint64
	// RandShare is the most of its probes the random seed may take after
	// the start, while it goes on sampling; SeedMax caps the random seed's
	// share of the space (it also seeds, up to that, whenever nothing
	// else is worth a probe).
	RandShare float64
	SeedMax   float64
	// HostShare is the most of its probes it spends seeding hosts it
	// found (0: none); it stops once HostWindow host seeds in a row taught
	// no new port.
	HostShare  float64
	HostWindow int
	// PortMin is the found services (on real-looking hosts) a port needs
	// before it is swept over the space; 0: 1.
	PortMin int
	// ProbeFound is the found hosts a port found once is probed on first
	// (explore.Config.ProbeFound).
	ProbeFound int
	// HostOrder is the order found hosts are seeded in
	// (explore.Config.HostOrder).
	HostOrder string
	// MultiPredict predicts from all of a host's found services at once.
	MultiPredict bool
	// Floor stops it when the best pending work is worth less than this
	// many services per probe.
	Floor float64
}

// finder tracks what a policy has found.
type finder struct {
	w     *World
	found map[gps.Target]bool
}

func newFinder(w *World) *finder {
	f := &finder{w: w, found: make(map[gps.Target]bool, len(w.byTarget))}
	for t := range w.seedSet {
		f.found[t] = true
	}
	return f
}

// probe reports whether t is a service not found before, and marks it found.
// real is 1 if it is a real service (World.IsReal), else 0.
func (f *finder) probe(t gps.Target) (found bool, real int) {
	if !f.mark(t) {
		return false, 0
	}
	if f.w.IsReal(t) {
		return true, 1
	}
	return true, 0
}

// mark marks t found and reports whether it is a service not found before.
// Most probes find nothing: the world is asked first, and what was found
// (the seed and the finds, all of the world) only about what it holds.
func (f *finder) mark(t gps.Target) bool {
	if _, ok := f.w.byTarget[t]; !ok {
		return false
	}
	if f.found[t] {
		return false
	}
	f.found[t] = true
	return true
}

// Oracle sends one probe per real service: the limit of any policy.
func Oracle(w *World, p Params) *Curve {
	c := newCurve("oracle", len(w.seedSet), w.seedReal, p.Budget)
	c.Spend(uint64(w.Services()-len(w.seedSet)), w.Services()-len(w.seedSet), w.real-w.seedReal)
	return c
}

// Exhaustive scans every port of every address of the world's /16s but the
// seed's, in random order: a straight line to every service.
func Exhaustive(w *World, p Params) *Curve {
	c := newCurve("exhaustive", len(w.seedSet), w.seedReal, p.Budget)
	c.Spend((w.Addresses()-w.SeedAddresses())*65535, w.Services()-len(w.seedSet), w.real-w.seedReal)
	return c
}

// Popularity scans whole ports over the whole space (skipping seed
// addresses), the port with the most seed services first, then the ports
// the seed never saw, in port order.
func Popularity(w *World, p Params) *Curve {
	c := newCurve("popularity", len(w.seedSet), w.seedReal, p.Budget)
	seedCount := map[uint16]int{}
	for t := range w.seedSet {
		seedCount[t.Port]++
	}
	perPort, realPerPort := map[uint16]int{}, map[uint16]int{}
	for t := range w.byTarget {
		if !w.seedSet[t] {
			perPort[t.Port]++
			if w.IsReal(t) {
				realPerPort[t.Port]++
			}
		}
	}
	order := make([]uint16, 0, 65535)
	for port := 1; port <= 65535; port++ {
		order = append(order, uint16(port))
	}
	slices.SortStableFunc(order, func(a, b uint16) int { return cmp.Compare(seedCount[b], seedCount[a]) })
	cost := w.Addresses() - w.SeedAddresses()
	left := w.Services() - len(w.seedSet)
	for _, port := range order {
		if left == 0 {
			break
		}
		n := perPort[port]
		left -= n
		if !c.Spend(cost, n, realPerPort[port]) {
			break
		}
	}
	return c
}

// groupIndex maps (prefix/step, port) to the truth services in it, each
// group's in address order: the order a group's hits update the model in
// must not depend on map iteration, or two runs differ.
func groupIndex(w *World, step int) map[gps.Target][]gps.Target {
	g := map[gps.Target][]gps.Target{}
	for t := range w.byTarget {
		k := gps.Target{Addr: gps.Mask(t.Addr, step), Port: t.Port}
		g[k] = append(g[k], t)
	}
	for _, ts := range g {
		slices.SortFunc(ts, func(a, b gps.Target) int { return cmp.Compare(a.Addr, b.Addr) })
	}
	return g
}

func seedModel(w *World) *model.Model {
	m := model.New()
	for i := range w.Seed {
		m.Add(&w.Seed[i])
	}
	return m
}

// BatchResult is what gps-batch did, for checks against `gps first`/`remaining`.
type BatchResult struct {
	Curve       *Curve
	Plan        []gps.PlanRow
	Priors      []row.Service
	Predictions []gps.Target
	Found       map[gps.Target]bool
}

// Batch is GPS exactly: scan the priors plan, group by group (2^(32-step)
// probes each), then probe the Phase 2 predictions.
func Batch(w *World, p Params) *BatchResult {
	m := seedModel(w)
	rows := m.Rows(p.Hitrate)
	plan := gps.Plan(rows, p.Step, p.Hitrate)
	groups := groupIndex(w, p.Step)
	f := newFinder(w)
	c := newCurve("gps-batch", len(w.seedSet), w.seedReal, p.Budget)
	var priors []row.Service
	live := true
	for _, g := range plan {
		n, r := 0, 0
		for _, t := range groups[gps.Target{Addr: g.Prefix, Port: g.Port}] {
			for _, i := range w.byTarget[t] {
				priors = append(priors, w.Truth[i])
			}
			if ok, real := f.probe(t); ok {
				n++
				r += real
			}
		}
		if live = c.Spend(g.Cost(), n, r); !live {
			break
		}
	}
	preds := gps.Remaining(m.Dict(), gps.RulesOf(rows), plan, priors, w.seedSet, p.Step)
	for _, t := range preds {
		if !live {
			break
		}
		n := 0
		ok, real := f.probe(t)
		if ok {
			n = 1
		}
		live = c.Spend(1, n, real)
	}
	return &BatchResult{Curve: c, Plan: plan, Priors: priors, Predictions: preds, Found: f.found}
}

// StreamStats says what gps-stream did.
type StreamStats struct {
	Groups, Chunks, Predictions, Hits int
	ModelServices                     int
	Dropped                           int           // predictions the scheduler dropped as sent or swept
	SimTime                           time.Duration // at replayRate
}

// replayRate is the packets per second of gps-stream's simulated clock: the
// curve is in probes, so it only sets what StreamStats.SimTime means.
const replayRate = 100_000

// Stream is this project's policy. The model starts from the seed and takes
// in every service found. All work sits in one schedule.Scheduler, released
// in order of expected services per probe: the plan groups and the extra
// sweeps for unexplained seed services (expected hosts over the group's
// size, learning from the hits of the group's chunks) and every prediction
// (its hitrate). When a service is found, the model is updated and that
// host's predictions are queued at once (and again after each new service:
// iterative). Seed addresses are skipped inside groups (they were scanned on
// every port already), and a probe already sent or inside a swept chunk is
// not sent again. progress, if not nil, is called with the curve's end every
// 1,024 steps (the caller decides what to report).
func Stream(w *World, p Params, progress func(Point)) (*Curve, StreamStats) {
	m := seedModel(w)
	rows := m.Rows(p.Hitrate)
	plan := gps.Plan(rows, p.Step, p.Hitrate)
	groups := groupIndex(w, p.Step)
	seedAddrs := make([]uint32, 0, len(w.seedAddr))
	for a := range w.seedAddr {
		seedAddrs = append(seedAddrs, a)
	}
	start := time.Unix(0, 0)
	clock := schedule.NewSimClock(start)
	sched, err := schedule.New(schedule.Config{Budget: p.Budget, Rate: replayRate, Chunk: p.Chunk, PriorWeight: p.PriorWeight,
		NoLearning: p.NoLearning, Skip: schedule.NewAddrs(seedAddrs), Clock: clock})
	if err != nil {
		panic(fmt.Sprintf("gps-stream: %v", err)) // Params.Validate keeps Chunk a power of two
	}
	f := newFinder(w)
	c := newCurve("gps-stream", len(w.seedSet), w.seedReal, p.Budget)
	var st StreamStats
	seedTargets := make([]gps.Target, 0, len(w.seedSet))
	for t := range w.seedSet {
		seedTargets = append(seedTargets, t)
	}
	plan = append(plan, gps.Unexplained(rows, plan, seedTargets, p.Step, p.Hitrate)...)
	for _, g := range plan {
		// The seed found Count services in the group on about SeedFrac of
		// its addresses: the evidence the group's prior yield rests on.
		err := sched.PushSweep(schedule.Sweep{Prefix: g.Prefix, Bits: g.Step, Port: g.Port,
			PriorHits: float64(g.Count), PriorProbes: w.SeedFrac * float64(g.Cost())}, nil)
		if err != nil {
			panic(fmt.Sprintf("gps-stream: %v", err)) // a plan row is a valid sweep
		}
	}
	hosts := newHostTracker(w, m)
	onFound := func(t gps.Target) {
		isNew := false
		for _, i := range w.byTarget[t] {
			isNew = m.Add(&w.Truth[i]) || isNew
		}
		// From all of the host's services found so far with the model as
		// it is now: a rule of an earlier service may clear the hitrate
		// only now. A target predicted again goes up in the scheduler if
		// its probability rose, and is dropped if not.
		host, ok := hosts.answered(t, isNew)
		if !ok {
			return
		}
		for _, pr := range m.Predict(host.found, p.Hitrate) {
			// The scheduler would drop it: as the predictor, publish a
			// target again only higher (a found one is never pushed, so
			// what raise records for it does not matter).
			u := gps.Target{Addr: t.Addr, Port: pr.Port}
			if !host.raise(pr.Port, pr.Hitrate) || f.found[u] {
				continue
			}
			sched.Push(schedule.Target(u), pr.Hitrate, nil)
		}
	}
	// answered are the services a work's probes found, in address order:
	// new ones and, in a chunk, ones found before (by a prediction or
	// another sweep). The pipeline publishes both, and its predictor
	// predicts the host again from either with the model as it is then;
	// so does the replay. hits counts the new ones.
	var answered []gps.Target
	for n := 1; ; n++ {
		if progress != nil && n%1024 == 0 {
			progress(c.End())
		}
		x, ok, err := sched.TryNext(context.Background())
		if err != nil || !ok {
			break // the budget is spent, or nothing is left
		}
		answered = answered[:0]
		hits, r := 0, 0
		if x.Kind == schedule.Chunk {
			ts := groups[gps.Target{Addr: gps.Mask(x.First, p.Step), Port: x.Port}]
			lo, _ := slices.BinarySearchFunc(ts, x.First, func(t gps.Target, a uint32) int { return cmp.Compare(t.Addr, a) })
			for _, t := range ts[lo:] {
				if t.Addr > x.Last {
					break
				}
				if w.seedSet[t] {
					continue // a seed host's: skipped by the chunk
				}
				answered = append(answered, t)
				if ok, real := f.probe(t); ok {
					hits++
					r += real
				}
			}
		} else if ok, real := f.probe(gps.Target(x.Target)); ok {
			answered, hits, r = append(answered, gps.Target(x.Target)), 1, real
			st.Hits++
		}
		sched.Report(x, hits)
		if !c.Spend(x.Probes, hits, r) {
			break
		}
		for _, t := range answered {
			onFound(t)
		}
	}
	ss := sched.Stats()
	st.Groups, st.Chunks, st.Predictions, st.Dropped = ss.Sweeps, ss.Chunks, ss.Predictions, ss.Dropped
	st.ModelServices = m.Stats().Services
	st.SimTime = clock.Now().Sub(start)
	return c, st
}
