package schedule

import (
	"slices"
	"sort"
)

// Addrs is a Skip of a sorted, duplicate-free list of addresses: 4 bytes an
// address.
type Addrs []uint32

// NewAddrs sorts and dedups addrs into an Addrs (it reuses addrs' array).
func NewAddrs(addrs []uint32) Addrs {
	slices.Sort(addrs)
	return Addrs(slices.Compact(addrs))
}

// Contains reports whether addr is in the list.
func (a Addrs) Contains(addr uint32) bool {
	_, ok := slices.BinarySearch(a, addr)
	return ok
}

// Count is how many of first..last are in the list.
func (a Addrs) Count(first, last uint32) uint64 {
	i := sort.Search(len(a), func(i int) bool { return a[i] >= first })
	j := sort.Search(len(a), func(i int) bool { return a[i] > last })
	return uint64(max(j-i, 0))
}

// Within is the part of the list inside first..last (no copy); nil if none.
func (a Addrs) Within(first, last uint32) Addrs {
	i := sort.Search(len(a), func(i int) bool { return a[i] >= first })
	j := sort.Search(len(a), func(i int) bool { return a[i] > last })
	if i >= j {
		return nil
	}
	return a[i:j:j]
}
