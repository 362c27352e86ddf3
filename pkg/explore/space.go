package explore

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/gpsscan/gps/pkg/ipv4"
)

// Space is the address space the policy seeds and sweeps: whole /16s,
// indexed 0..Size()-1 in /16 order.
type Space struct {
	slash16s []uint32 // sorted /16 prefixes
}

// NewSpace is the space of the given /16 prefixes (host bits are masked;
// duplicates count once).
func NewSpace(slash16s []uint32) *Space {
	s := &Space{}
	for _, p := range slash16s {
		s.slash16s = append(s.slash16s, p&^0xffff)
	}
	slices.Sort(s.slash16s)
	s.slash16s = slices.Compact(s.slash16s)
	return s
}

// LabSpace is the space of a lab or real world of n /16s whose truth uses
// the /16s of used: those, then the /16s of 127.1.0.0 .. 127.255.0.0 the
// truth never touches, in order, until there are n (worlds live there, and
// a world whose hosts leave /16s empty still has n of them).
func LabSpace(used []uint32, n int) *Space {
	s := NewSpace(used)
	seen := map[uint32]bool{}
	for _, p := range s.slash16s {
		seen[p] = true
	}
	for k := uint32(1); len(s.slash16s) < n && k < 256; k++ {
		if p := 127<<24 | k<<16; !seen[p] {
			s.slash16s = append(s.slash16s, p)
		}
	}
	slices.Sort(s.slash16s)
	return s
}

// ParseSpace reads a space from prefixes of length 16 or shorter (each
// whole /16 of them), as --own-space gives them.
func ParseSpace(prefixes []string) (*Space, error) {
	var p16 []uint32
	for _, arg := range prefixes {
		for f := range strings.SplitSeq(arg, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			pr, err := ipv4.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("space %q: %w", f, err)
			}
			if pr.Bits > 16 {
				return nil, fmt.Errorf("space %q: want prefixes of /16 or shorter (it sweeps whole /16s)", f)
			}
			if pr.Bits < 8 {
				return nil, fmt.Errorf("space %q: want /8 or longer", f)
			}
			for i := uint32(0); i < 1<<(16-pr.Bits); i++ {
				p16 = append(p16, pr.First()+i<<16)
			}
		}
	}
	if len(p16) == 0 {
		return nil, fmt.Errorf("space: no prefix given")
	}
	return NewSpace(p16), nil
}

// Slash16s are the space's /16 prefixes, sorted; not to be modified.
func (s *Space) Slash16s() []uint32 { return s.slash16s }

// Prefixes are the space as /16 prefixes in text (ParseSpace reads them).
func (s *Space) Prefixes() []string {
	out := make([]string, len(s.slash16s))
	for i, p := range s.slash16s {
		out[i] = ipv4.Prefix{Addr: p, Bits: 16}.String()
	}
	return out
}

// Size is the number of addresses in the space.
func (s *Space) Size() uint64 { return uint64(len(s.slash16s)) << 16 }

// Addr is the address of index i (0 <= i < Size()).
func (s *Space) Addr(i uint64) uint32 { return s.slash16s[i>>16] | uint32(i&0xffff) }

// Cyclic walks 0..n-1 in a fixed pseudo-random order, each index once per
// cycle: a bijection of the k-bit counter (2^k the smallest power of two >=
// n), rerolling values >= n, as zmap's cyclic groups do. The same key gives
// the same order on every run; a seed sample taken from its first m values
// is a uniform sample of the space, and growing it keeps the earlier ones.
type Cyclic struct {
	n, i uint64
	k    uint
	key  [3]uint64
}

// NewCyclic is the order of 0..n-1 under key.
func NewCyclic(n, key uint64) *Cyclic {
	k := uint(bits.Len64(max(n, 2) - 1))
	c := &Cyclic{n: n, k: k}
	for j := range c.key {
		key = mix64(key + uint64(j))
		c.key[j] = key
	}
	return c
}

// Next returns the next index of the order; after n calls the order starts
// over.
func (c *Cyclic) Next() uint64 {
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
func (c *Cyclic) permute(x uint64) uint64 {
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
