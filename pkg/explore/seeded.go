package explore

import (
	"slices"
	"sync"

	"github.com/gpsscan/gps/pkg/schedule"
)

// Seeded is the set of addresses seeded so far, a schedule.Skip that grows
// as seeds are probed: a chunk released after a seed leaves the seeded
// address out. Safe for concurrent use (the prober's senders add while the
// scheduler reads).
type Seeded struct {
	mu sync.RWMutex
	a  schedule.Addrs
}

// Add puts addr in the set.
func (g *Seeded) Add(addr uint32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	i, ok := slices.BinarySearch(g.a, addr)
	if !ok {
		g.a = slices.Insert(g.a, i, addr)
	}
}

// Contains reports whether addr is in the set.
func (g *Seeded) Contains(addr uint32) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.a.Contains(addr)
}

// Count is how many of first..last (inclusive) are in the set.
func (g *Seeded) Count(first, last uint32) uint64 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.a.Count(first, last)
}
