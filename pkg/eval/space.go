package eval

import (
	"math/bits"
	"slices"
)

// space is the scanned address space of a world: NSlash16 /16s, indexed
// 0..size-1 in /16 order. Lab and real worlds live in 127.1.0.0/16 ..
// 127.N.0.0/16; a /16 the world's truth never touches is taken from that
// run in order, so that a world whose hosts leave /16s empty still has
// NSlash16 of them (Addresses counts them all).
type space struct {
	slash16s []uint32 // sorted /16 prefixes
}

func newSpace(w *World) *space {
	seen := map[uint32]bool{}
	for t := range w.byTarget {
		seen[t.Addr&^0xffff] = true
	}
	s := &space{}
	for p := range seen {
		s.slash16s = append(s.slash16s, p)
	}
	for k := uint32(1); len(s.slash16s) < w.NSlash16 && k < 256; k++ {
		if p := 127<<24 | k<<16; !seen[p] {
			s.slash16s = append(s.slash16s, p)
		}
	}
	slices.Sort(s.slash16s)
	return s
}

// size is the number of addresses in the space.
func (s *space) size() uint64 { return uint64(len(s.slash16s)) << 16 }

// addr is the address of index i (0 <= i < size).
func (s *space) addr(i uint64) uint32 { return s.slash16s[i>>16] | uint32(i&0xffff) }

// cyclic walks 0..n-1 in a fixed pseudo-random order, each index once per
// cycle: a bijection of the k-bit counter (2^k the smallest power of two >=
// n), rerolling values >= n, as zmap's cyclic groups do. The same key gives
// the same order on every run; a seed sample taken from its first m values
// is a uniform sample of the space, and growing it keeps the earlier ones.
type cyclic struct {
	n, i uint64
	k    uint
	key  [3]uint64
}

func newCyclic(n, key uint64) *cyclic {
	k := uint(bits.Len64(max(n, 2) - 1))
	c := &cyclic{n: n, k: k}
	for j := range c.key {
		key = mix64(key + uint64(j))
		c.key[j] = key
	}
	return c
}

// next returns the next index of the order; after n calls the order starts
// over.
func (c *cyclic) next() uint64 {
	for {
		x := c.permute(c.i)
		c.i = (c.i + 1) & (1<<c.k - 1)
		if x < c.n {
			return x
		}
	}
}

// permute is a bijection of 0..2^k-1: rounds of an odd multiply, an add
// and an xorshift, each a bijection mod 2^k.
func (c *cyclic) permute(x uint64) uint64 {
	m := uint64(1)<<c.k - 1
	for _, key := range c.key {
		x = (x*(key|1) + key>>32) & m
		x ^= x >> (c.k/2 + 1)
	}
	return x
}

// mix64 is splitmix64's finalizer.
func mix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
