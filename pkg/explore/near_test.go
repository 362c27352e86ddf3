package explore

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestNearScratch: counts start afresh each call (also across the wrap of
// the generation), and a bucket pops its hosts in increasing order.
func TestNearScratch(t *testing.T) {
	var s nearScratch
	r := rand.New(rand.NewPCG(1, 2))
	orders := make([]uint64, 1000)
	for i := range orders {
		orders[i] = r.Uint64()
	}
	for call := range 3 {
		if call == 2 {
			s.gen = ^uint32(0) // the next call wraps
		}
		s.next(len(orders))
		var want []uint64
		for i := range int32(len(orders)) {
			if s.add(i) != 1 {
				t.Fatalf("call %d: host %d counted from a previous call", call, i)
			}
			if i%3 == 0 {
				s.add(i)
				want = append(want, orders[i])
			}
		}
		slices.Sort(want)
		h := s.bucket(2, func(i int32) uint64 { return orders[i] })
		var got []uint64
		for len(h) > 0 {
			var c ordered
			c, h = popOrdered(h)
			got = append(got, c.order)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("call %d: popped %d hosts, not in increasing order or not those sharing 2 ports", call, len(got))
		}
	}
}

// TestOrderedHeap: keys pushed one at a time come off in increasing order.
func TestOrderedHeap(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var h []ordered
	var want []uint64
	for i := range uint32(500) {
		o := r.Uint64()
		h = pushOrdered(h, ordered{o, i})
		want = append(want, o)
	}
	slices.Sort(want)
	for i, w := range want {
		var o ordered
		o, h = popOrdered(h)
		if o.order != w {
			t.Fatalf("pop %d: order %d, want %d", i, o.order, w)
		}
	}
}
