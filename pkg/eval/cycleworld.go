package eval

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/row"
)

// spaceFirst is the first address of every lab world: its /16s are
// 127.1.0.0/16 .. 127.<slash16s>.0.0/16 (pkg/lab).
const spaceFirst = 127<<24 | 1<<16

// cycleWorld is the world at a later cycle: truth is that cycle's services
// and the seed is every service of seedAddrs (sorted) scanned on every port,
// a fraction frac of base's space. Meta and size are base's.
func cycleWorld(base *World, truth []row.Service, seedAddrs []uint32, frac float64) *World {
	w := &World{Meta: base.Meta, NSlash16: base.NSlash16, SeedFrac: frac, Truth: truth,
		byTarget: make(map[gps.Target][]int32, len(truth)), seedSet: map[gps.Target]bool{},
		seedAddr: make(map[uint32]bool, len(seedAddrs)), ports: map[uint32]int{}}
	w.indexTruth()
	for _, a := range seedAddrs {
		w.seedAddr[a] = true
	}
	// truth is in (address, port) order: the seed is a run per address.
	for _, a := range seedAddrs {
		i, _ := slices.BinarySearchFunc(truth, a, func(s row.Service, a uint32) int { return cmp.Compare(s.Addr, a) })
		for ; i < len(truth) && truth[i].Addr == a; i++ {
			t := gps.Target{Addr: a, Port: uint16(truth[i].Port)}
			w.Seed = append(w.Seed, truth[i])
			if !w.seedSet[t] && w.IsReal(t) {
				w.seedReal++
			}
			w.seedSet[t] = true
		}
	}
	return w
}

// seedWalk hands out the seed addresses of cycles 1, 2, ...: consecutive
// stretches of one full-cycle permutation of the world's space, as a
// seeder walking its cyclic order on does, so that cycles sample different
// addresses (cycle 0's seed is the world's own).
type seedWalk struct {
	it    *ipv4.Iter
	n     int // addresses per cycle
	first uint32
}

// newSeedWalk walks the space of w, round(frac x space) addresses a cycle;
// randSeed picks the permutation.
func newSeedWalk(w *World, frac float64, randSeed int64) (*seedWalk, error) {
	space := w.Addresses()
	c, err := ipv4.NewCycle(space, randSeed)
	if err != nil {
		return nil, fmt.Errorf("walk the seeds of %d addresses: %w", space, err)
	}
	n := int(float64(space)*frac + 0.5)
	return &seedWalk{it: c.Shard(0, 1), n: n, first: spaceFirst}, nil
}

// next is the next cycle's seed addresses, sorted. After the whole space it
// returns fewer (the walk does not wrap: worlds have far fewer cycles than
// 1/frac).
func (s *seedWalk) next() []uint32 {
	out := make([]uint32, 0, s.n)
	for len(out) < s.n {
		i, ok := s.it.Next()
		if !ok {
			break
		}
		out = append(out, s.first+uint32(i))
	}
	slices.Sort(out)
	return out
}
