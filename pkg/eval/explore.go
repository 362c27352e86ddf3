package eval

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gpsscan/gps/pkg/features"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/schedule"
)

// seedYield is the yield seeds are pushed at when the policy has decided to
// seed now: above any prediction (at most 1) and any sweep, so the seed
// goes next. Whether to seed is the policy's choice (see wantSeed), since
// a seed's worth is what it teaches, not what it finds.
const seedYield = 2

// explorer is gps-stream-own: gps-stream that takes its own seed and keeps
// learning ports. It seeds addresses of the space in a fixed cyclic order
// (every port, SeedPorts probes each, charged to its curve), sweeps every
// port it learns of over every /16 of the space at a yield learned as the
// chunks report, seeds some of the hosts it finds (a found host is a far
// richer sample than a random address), and predicts from all the found
// services of a host at once.
type explorer struct {
	w     *World
	p     Params
	sp    *space
	m     *model.Model
	sched *schedule.Scheduler
	f     *finder
	c     *Curve
	by16  map[gps.Target][]gps.Target // (/16, port): truth services, by address
	byIP  map[uint32][]gps.Target     // truth services of an address, by port
	order *cyclic

	hostPorts map[uint32][]uint16 // found ports of a host
	portHits  map[uint16]int      // found services of a port on real-looking hosts
	port16    map[gps.Target]int  // the same per (/16, port)
	swept     map[uint16]bool     // ports whose sweeps are queued
	skip      *growingAddrs       // seeded addresses, left out of later chunks

	randSeeds, randHosts int      // random seed addresses, and how many answered
	randPending          int      // random seeds pushed and not released
	hostQueue            []uint32 // found hosts not seeded yet
	hostSeeds            int
	hostSeedProbes       uint64
	newPortSeeds         []bool // per host seed: did it teach a port not known before
	stats                ExploreStats
}

// ExploreStats says what gps-stream-own did.
type ExploreStats struct {
	RandomSeeds, RandomHosts, HostSeeds, LearnedPorts int
	schedule.Stats
}

// Explore runs gps-stream-own; p.OwnSeed must be > 0.
func Explore(w *World, p Params) (*Curve, ExploreStats) {
	e := newExplorer(w, p)
	e.run()
	e.stats.Stats = e.sched.Stats()
	e.stats.RandomSeeds, e.stats.RandomHosts, e.stats.HostSeeds = e.randSeeds, e.randHosts, e.hostSeeds
	e.stats.LearnedPorts = len(e.swept)
	return e.c, e.stats
}

func newExplorer(w *World, p Params) *explorer {
	e := &explorer{w: w, p: p, sp: newSpace(w), m: model.New(), f: &finder{w: w, found: map[gps.Target]bool{}},
		by16: groupIndex(w, 16), byIP: map[uint32][]gps.Target{}, hostPorts: map[uint32][]uint16{},
		portHits: map[uint16]int{}, port16: map[gps.Target]int{}, swept: map[uint16]bool{}, skip: &growingAddrs{}}
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
	e.order = newCyclic(e.sp.size(), uint64(p.OwnSeedKey))
	sched, err := schedule.New(schedule.Config{Budget: budget, Rate: replayRate, Chunk: p.Chunk, PriorWeight: p.PriorWeight,
		NoLearning: p.NoLearning, Skip: e.skip, Clock: schedule.NewSimClock(time.Unix(0, 0))})
	if err != nil {
		panic(fmt.Sprintf("gps-stream-own: %v", err)) // Params.Validate keeps Chunk a power of two
	}
	e.sched = sched
	return e
}

func (e *explorer) run() {
	boot := uint64(e.p.OwnSeed * float64(e.sp.size()))
	for range max(boot, 1) {
		e.pushRandom()
	}
	var hits []gps.Target
	for {
		x, ok, err := e.sched.TryNext(context.Background())
		if err == nil && (!ok || x.Yield < e.p.Floor) && e.refill() {
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
		e.maybeSeed()
	}
}

// token kinds of the seeds, so that a released seed says where it came from.
type seedKind int

const (
	randomSeed seedKind = iota + 1
	hostSeed
)

// probe answers x from truth: the services it finds that were not found.
func (e *explorer) probe(x schedule.Work, hits []gps.Target) []gps.Target {
	switch x.Kind {
	case schedule.Seed:
		e.skip.add(x.First)
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

// learn takes the finds of x into the model, the port counts, the sweeps
// and the predictions.
func (e *explorer) learn(x schedule.Work, hits []gps.Target) {
	if x.Kind == schedule.Seed {
		switch x.Token {
		case randomSeed:
			e.randSeeds++
			e.randPending--
			if len(hits) > 0 {
				e.randHosts++
			}
		case hostSeed:
			e.hostSeeds++
			e.hostSeedProbes += x.Probes
		}
	}
	newPort := false
	for _, t := range hits {
		for _, i := range e.w.byTarget[t] {
			e.m.Add(&e.w.Truth[i])
		}
		first := len(e.hostPorts[t.Addr]) == 0
		e.hostPorts[t.Addr] = append(e.hostPorts[t.Addr], t.Port)
		if first && e.p.HostShare > 0 && !e.sched.Seeded(t.Addr) {
			e.hostQueue = append(e.hostQueue, t.Addr)
		}
	}
	// A host answering on more than PseudoPorts ports is a sink: its ports
	// teach nothing about real hosts and predicting more of it is waste.
	for _, t := range hits {
		if len(e.hostPorts[t.Addr]) > PseudoPorts {
			continue
		}
		if !e.swept[t.Port] {
			newPort = true
		}
		e.portHits[t.Port]++
		e.port16[gps.Target{Addr: t.Addr &^ 0xffff, Port: t.Port}]++
	}
	// A port is swept once PortMin services of it are found, or at once
	// when the random seed found it: one find in a uniform sample of a
	// small share of the space stands for many, while one find on a host
	// that was itself found through a known port is often noise.
	random := x.Kind == schedule.Seed && x.Token == randomSeed
	for _, t := range hits {
		enough := random || e.portHits[t.Port] >= max(e.p.PortMin, 1)
		if len(e.hostPorts[t.Addr]) <= PseudoPorts && !e.swept[t.Port] && enough {
			e.sweepPort(t.Port)
		}
	}
	if x.Kind == schedule.Seed && x.Token == hostSeed {
		e.newPortSeeds = append(e.newPortSeeds, newPort)
	}
	done := map[uint32]bool{}
	for _, t := range hits {
		if !done[t.Addr] {
			done[t.Addr] = true
			e.predict(t.Addr)
		}
	}
}

// sweepPort queues port over every /16 of the space. The prior yield of a
// /16 is the mean of what was found there on the port and what was found
// per /16 anywhere, over the share of the space's hosts found so far (the
// finds are that share's sample), worth that share of a /16's probes: a
// handful of empty chunks outweighs it.
func (e *explorer) sweepPort(port uint16) {
	e.swept[port] = true
	share := e.foundShare()
	all := float64(e.portHits[port]) / float64(len(e.sp.slash16s))
	for _, p16 := range e.sp.slash16s {
		local := float64(e.port16[gps.Target{Addr: p16, Port: port}])
		err := e.sched.PushSweep(schedule.Sweep{Prefix: p16, Bits: 16, Port: port,
			PriorHits: local + all, PriorProbes: 2 * share * 65536}, nil)
		if err != nil {
			panic(fmt.Sprintf("gps-stream-own: %v", err)) // a /16 with a positive prior is a valid sweep
		}
	}
}

// foundShare estimates the share of the space's hosts found so far: hosts
// found over the hosts the random seed's answer rate says there are.
func (e *explorer) foundShare() float64 {
	rate := (float64(e.randHosts) + 1) / (float64(e.randSeeds) + 1)
	hosts := rate * float64(e.sp.size())
	return min(max(float64(len(e.hostPorts))/hosts, 1e-3), 1)
}

// predict queues the model's predictions for addr from all its found
// services at once (the best evidence for each port among them).
func (e *explorer) predict(addr uint32) {
	ports := e.hostPorts[addr]
	if len(ports) > PseudoPorts || e.sched.Seeded(addr) {
		return
	}
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

// refill seeds more when nothing worth a probe is left: a found host if
// any is waiting, else the next random address, while the random seed is
// within SeedMax of the space. It reports whether it pushed a seed.
func (e *explorer) refill() bool {
	if len(e.hostQueue) > 0 && e.p.HostShare > 0 {
		a := e.hostQueue[0]
		e.hostQueue = e.hostQueue[1:]
		e.sched.PushSeed(a, seedYield, hostSeed)
		return true
	}
	if float64(e.randSeeds+e.randPending) >= e.p.SeedMax*float64(e.sp.size()) {
		return false
	}
	e.pushRandom()
	return true
}

// pushRandom queues the next address of the cyclic order as a seed.
func (e *explorer) pushRandom() {
	e.randPending++
	e.sched.PushSeed(e.sp.addr(e.order.next()), seedYield, randomSeed)
}

// maybeSeed pushes the next host seed while host seeds stay within their
// share of the probes and still teach ports.
func (e *explorer) maybeSeed() {
	spent := e.c.End().Probes
	if e.randPending == 0 && float64(uint64(e.randSeeds+1)*schedule.SeedPorts) <= e.p.RandShare*float64(spent) &&
		float64(e.randSeeds) < e.p.SeedMax*float64(e.sp.size()) {
		e.pushRandom()
	}
	if e.p.HostShare <= 0 || len(e.hostQueue) == 0 {
		return
	}
	if float64(e.hostSeedProbes+schedule.SeedPorts) > e.p.HostShare*float64(spent) || !e.hostSeedsPay() {
		return
	}
	a := e.hostQueue[0]
	e.hostQueue = e.hostQueue[1:]
	e.sched.PushSeed(a, seedYield, hostSeed)
}

// hostSeedsPay reports whether the last hostWindow host seeds taught at
// least one port not known before.
func (e *explorer) hostSeedsPay() bool {
	n := len(e.newPortSeeds)
	if n < e.p.HostWindow {
		return true
	}
	return slices.Contains(e.newPortSeeds[n-e.p.HostWindow:], true)
}

// growingAddrs is a schedule.Skip that grows as addresses are seeded: a
// chunk released after a seed leaves the seeded address out.
type growingAddrs struct{ a schedule.Addrs }

func (g *growingAddrs) add(addr uint32) {
	i, ok := slices.BinarySearch(g.a, addr)
	if !ok {
		g.a = slices.Insert(g.a, i, addr)
	}
}

func (g *growingAddrs) Contains(addr uint32) bool       { return g.a.Contains(addr) }
func (g *growingAddrs) Count(first, last uint32) uint64 { return g.a.Count(first, last) }
