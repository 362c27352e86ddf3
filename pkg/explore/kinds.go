package explore

import (
	"container/heap"
	"slices"
)

// Host seeds by kind (HostKinds): found hosts are grouped by their found
// ports, and the next host seed comes from the kind whose seeds found the
// most per seed, (finds+1)/(seeds+1), every kind tried once first (in the
// order the kinds appeared). Hosts whose found ports no other found host
// shares find the most, and each such set is a kind of its own.
type kinds struct {
	by      map[string]*kind
	h       kindHeap          // kinds with hosts waiting
	of      map[uint32]string // a waiting host's kind when it was last queued
	seedOf  map[uint32]*kind  // a host seed's kind, until it is learned
	created int
}

type kind struct {
	key          string
	hosts        []uint32 // waiting, in the order queued; stale entries are skipped
	seeds, finds int
	seq          int // order of appearance
	idx          int // in the heap, -1 when not
}

func newKinds() *kinds {
	return &kinds{by: map[string]*kind{}, of: map[uint32]string{}, seedOf: map[uint32]*kind{}}
}

// kindKey is the set of ports as a map key.
func kindKey(ports []uint16) string {
	s := slices.Clone(ports)
	slices.Sort(s)
	b := make([]byte, 0, 2*len(s))
	for _, p := range s {
		b = append(b, byte(p>>8), byte(p))
	}
	return string(b)
}

// queue puts a waiting host under the kind of its found ports (again, when
// they changed).
func (ks *kinds) queue(addr uint32, ports []uint16) {
	k := kindKey(ports)
	if old, ok := ks.of[addr]; ok && old == k {
		return
	}
	ks.of[addr] = k
	x := ks.by[k]
	if x == nil {
		x = &kind{key: k, seq: ks.created, idx: -1}
		ks.created++
		ks.by[k] = x
	}
	x.hosts = append(x.hosts, addr)
	if x.idx < 0 {
		heap.Push(&ks.h, x)
	}
}

// drop takes a host out of the queue (it became a pseudo-host).
func (ks *kinds) drop(addr uint32) { delete(ks.of, addr) }

// waiting reports whether a host waits for its seed.
func (ks *kinds) waiting() bool { return len(ks.of) > 0 }

// pop takes the next host of the best kind for which push reports true
// (false: it was seeded since it was queued).
func (ks *kinds) pop(push func(uint32) bool) bool {
	for len(ks.h) > 0 {
		x := ks.h[0]
		for len(x.hosts) > 0 {
			a := x.hosts[0]
			x.hosts = x.hosts[1:]
			if ks.of[a] != x.key {
				continue // requeued under another kind, or seeded
			}
			delete(ks.of, a)
			if push(a) {
				ks.seedOf[a] = x
				if len(x.hosts) == 0 {
					heap.Pop(&ks.h)
				}
				return true
			}
		}
		heap.Pop(&ks.h)
	}
	return false
}

// restore takes a host seeded before a restart out of the queue; its seed
// counts for the kind it waits in.
func (ks *kinds) restore(addr uint32) {
	if k, ok := ks.of[addr]; ok {
		ks.seedOf[addr] = ks.by[k]
		delete(ks.of, addr)
	}
}

// learned counts a host seed of addr that found finds services.
func (ks *kinds) learned(addr uint32, finds int) {
	x := ks.seedOf[addr]
	if x == nil {
		return
	}
	delete(ks.seedOf, addr)
	x.seeds++
	x.finds += finds
	if x.idx >= 0 {
		heap.Fix(&ks.h, x.idx)
	}
}

// kindHeap orders kinds: never seeded first (oldest first), then by
// (finds+1)/(seeds+1).
type kindHeap []*kind

func (h kindHeap) Len() int { return len(h) }
func (h kindHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if (a.seeds == 0) != (b.seeds == 0) {
		return a.seeds == 0
	}
	if a.seeds == 0 {
		return a.seq < b.seq
	}
	l, r := (a.finds+1)*(b.seeds+1), (b.finds+1)*(a.seeds+1)
	if l != r {
		return l > r
	}
	return a.seq < b.seq
}
func (h kindHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *kindHeap) Push(x any) {
	k := x.(*kind)
	k.idx = len(*h)
	*h = append(*h, k)
}
func (h *kindHeap) Pop() any {
	old := *h
	k := old[len(old)-1]
	k.idx = -1
	*h = old[:len(old)-1]
	return k
}
