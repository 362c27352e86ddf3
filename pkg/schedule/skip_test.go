package schedule

import (
	"math/rand/v2"
	"testing"
)

// TestAddrsCount: Count and Within agree with a walk of the list, at its
// ends, between its addresses and on empty ranges.
func TestAddrsCount(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	raw := make([]uint32, 200)
	for i := range raw {
		raw[i] = 1000 + rng.Uint32N(2000)
	}
	raw = append(raw, 0, ^uint32(0))
	a := NewAddrs(raw)
	ends := []uint32{0, 1, 999, 1000, 2999, 3000, ^uint32(0) - 1, ^uint32(0)}
	for range 2000 {
		ends = append(ends, 900+rng.Uint32N(2200))
	}
	for i, first := range ends {
		last := ends[(i*7+3)%len(ends)]
		want := 0
		for _, x := range a {
			if x >= first && x <= last {
				want++
			}
		}
		if got := a.Count(first, last); got != uint64(want) {
			t.Fatalf("Count(%d, %d) = %d, want %d", first, last, got, want)
		}
		w := a.Within(first, last)
		if len(w) != want || (want == 0) != (w == nil) {
			t.Fatalf("Within(%d, %d) has %d addresses (nil %v), want %d", first, last, len(w), w == nil, want)
		}
		for _, x := range w {
			if x < first || x > last {
				t.Fatalf("Within(%d, %d) holds %d", first, last, x)
			}
		}
	}
}
