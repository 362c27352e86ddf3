package explore

import (
	"slices"

	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/schedule"
)

// Restoring a policy after a restart: its caller reads back, in the order
// they were probed, the works of the earlier run that found services (the
// prober's RESULTS, by probe count) and hands each to RestoreSeed or
// RestoreFinds instead of Start. The policy learns them as it did (ports,
// sweeps, host queue, pseudo-hosts) without pushing their seeds again; the
// seeded addresses are marked seeded in the scheduler and left out of
// chunks. A random seed's place in the cyclic order tells how many random
// seeds went before it, those that found nothing included; the random
// seeds after the last that found something are seeded again.

// RestoreSeed takes in a seed of addr of the earlier run that found hits.
// It is a random seed if addr is in the cyclic order's first SeedMax of
// the space and was not found before, else a host seed.
func (p *Policy) RestoreSeed(addr uint32, hits []gps.Target) {
	p.seeded.Add(addr)
	p.sched.MarkSeeded(addr)
	p.mu.Lock()
	i, random := p.randIndex(addr)
	random = random && len(p.hostPorts[addr]) == 0
	x := schedule.Work{Kind: schedule.Seed, First: addr, Last: addr, Port: schedule.SeedPorts, Probes: schedule.SeedPorts, Token: p.tok.Host}
	if random {
		// Learn counts it: randSeeds becomes the seeds up to it in the order.
		p.randSeeds, p.randPending = max(p.randSeeds, i+1)-1, p.randPending+1
		x.Token = p.tok.Random
	} else if j := slices.Index(p.hostQueue, addr); j >= 0 {
		p.hostQueue = slices.Delete(p.hostQueue, j, j+1)
	} else {
		p.random.drop(addr)
		if p.c.HostOrder == HostMixed && p.hostPushed%2 == 0 {
			p.kinds.drop(addr) // the random order's turn: it counts for no kind
		} else {
			p.kinds.restore(addr) // its kind counts what it found, as when it was popped
		}
		p.hostPushed++
	}
	p.mu.Unlock()
	p.Learn(x, hits)
}

// RestoreFinds takes in a prediction or a chunk of the earlier run that
// found hits.
func (p *Policy) RestoreFinds(hits []gps.Target) {
	p.Learn(schedule.Work{Kind: schedule.Probe}, hits)
}

// Restored ends a restore: the cyclic order goes on after the last random
// seed that found something, and what is left of the first seeds (Start)
// is pushed.
func (p *Policy) Restored() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.order = NewCyclic(p.sp.Size(), p.c.Key)
	for range p.randSeeds {
		p.order.Next()
	}
	p.randIndexOf = nil
	boot := max(uint64(p.c.OwnSeed*float64(p.sp.Size())), 1)
	for uint64(p.randSeeds+p.randPending) < boot {
		p.pushRandom()
	}
}

// randIndex is addr's place in the cyclic order, if it is among the first
// SeedMax of the space (the random seed never goes further); p.mu is held.
func (p *Policy) randIndex(addr uint32) (int, bool) {
	if p.randIndexOf == nil {
		p.randIndexOf = map[uint32]int{}
		o := NewCyclic(p.sp.Size(), p.c.Key)
		n := int(p.c.SeedMax*float64(p.sp.Size())) + 1
		for i := range min(uint64(n), p.sp.Size()) {
			p.randIndexOf[p.sp.Addr(o.Next())] = int(i)
		}
	}
	i, ok := p.randIndexOf[addr]
	return i, ok
}
