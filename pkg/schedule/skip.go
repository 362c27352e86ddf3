package schedule

import "slices"

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

// Count is how many of first..last are in the list. A replay asks it of
// every chunk: slices.BinarySearch, unlike sort.Search, calls no closure.
func (a Addrs) Count(first, last uint32) uint64 {
	i, j := a.span(first, last)
	return uint64(j - i)
}

// Within is the part of the list inside first..last (no copy); nil if none.
func (a Addrs) Within(first, last uint32) Addrs {
	i, j := a.span(first, last)
	if i == j {
		return nil
	}
	return a[i:j:j]
}

// span is the indexes i..j-1 of the list inside first..last (i == j: none).
func (a Addrs) span(first, last uint32) (i, j int) {
	if first > last {
		return 0, 0
	}
	i, _ = slices.BinarySearch(a, first)
	j, found := slices.BinarySearch(a[i:], last)
	j += i
	if found {
		j++
	}
	return i, j
}
