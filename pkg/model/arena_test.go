package model

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// liveBlock is a block handed out in TestArenaShards, filled with its tag.
type liveBlock struct {
	off   uint32
	class uint8
	tag   uint32
}

// churn allocates, resizes and frees blocks of shard s at random, keeps
// those it holds at the end in *live, each filled with its own tag.
func churn(a *arena[uint32], s *shard, r *rand.Rand, tagBase uint32, n int, live *[]liveBlock) {
	fill := func(b liveBlock) {
		for i := range a.block(b.off, 1<<b.class) {
			a.block(b.off, 1<<b.class)[i] = b.tag
		}
	}
	for i := range n {
		switch op := r.IntN(10); {
		case op < 6 || len(*live) == 0:
			c := uint8(r.IntN(12))
			if r.IntN(200) == 0 {
				c = maxClass
			}
			b := liveBlock{a.allocIn(s, c), c, tagBase + uint32(i)}
			fill(b)
			*live = append(*live, b)
		case op < 8:
			j := r.IntN(len(*live))
			b := (*live)[j]
			a.releaseIn(s, b.off, b.class)
			(*live)[j] = (*live)[len(*live)-1]
			*live = (*live)[:len(*live)-1]
		default:
			j := r.IntN(len(*live))
			b := &(*live)[j]
			n := 1 << b.class
			m := n*2 + 1
			if b.class >= 11 {
				m = n / 2
			}
			b.off = a.resizeIn(s, b.off, n, m)
			b.class = classOf(m)
			b.tag = tagBase + uint32(i)
			fill(*b)
		}
	}
}

// checkBlocks fails unless the blocks are disjoint and each holds its tag.
func checkBlocks(t *testing.T, a *arena[uint32], live []liveBlock) {
	t.Helper()
	slices.SortFunc(live, func(x, y liveBlock) int { return int(x.off) - int(y.off) })
	for i, b := range live {
		if i > 0 && live[i-1].off+1<<live[i-1].class > b.off {
			t.Fatalf("blocks at %d (class %d) and %d overlap", live[i-1].off, live[i-1].class, b.off)
		}
		for _, v := range a.block(b.off, 1<<b.class) {
			if v != b.tag {
				t.Fatalf("block at %d (class %d): %d overwritten by %d", b.off, b.class, b.tag, v)
			}
		}
	}
}

// TestArenaShards hands an arena's blocks to shards that allocate, resize
// and free at once (as the writers of a parallel flush do), joins them, and
// goes on: no block handed out may overlap another, before or after.
func TestArenaShards(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		r := rand.New(rand.NewPCG(seed, 5))
		var a arena[uint32]
		var live []liveBlock
		churn(&a, &a.main, r, 1<<28, 3000, &live)
		checkBlocks(t, &a, live)
		for round := range 3 {
			shards := make([]shard, 1+int(seed)%4)
			a.split(shards)
			lives := make([][]liveBlock, len(shards))
			var wg sync.WaitGroup
			for i := range shards {
				r := rand.New(rand.NewPCG(seed, uint64(10*round+i)))
				wg.Go(func() { churn(&a, &shards[i], r, uint32(round*8+i+1)<<24, 2000, &lives[i]) })
			}
			wg.Wait()
			a.join(shards)
			for _, l := range lives {
				live = append(live, l...)
			}
			checkBlocks(t, &a, live)
			churn(&a, &a.main, r, uint32(round+1)<<29, 2000, &live)
			checkBlocks(t, &a, live)
		}
	}
}
