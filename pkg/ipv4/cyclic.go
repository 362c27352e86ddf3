package ipv4

import (
	"errors"
	"fmt"
	"iter"
	"math/big"
	"math/bits"
	"math/rand/v2"
)

// MaxCycle is the largest N a Cycle permutes: every (address, port) pair of
// IPv4 with room to spare.
const MaxCycle = 1 << 56

// ErrCycleSize is returned for an N above MaxCycle.
var ErrCycleSize = errors.New("cycle size out of range")

// Cycle is a full-cycle pseudo-random permutation of [0, N), as ZMap's
// src/cyclic.c: the multiplicative group of integers modulo P, the smallest
// prime above N, is cyclic of order P-1; walking x, x·g, x·g², ... from a
// random x with a random generator g visits each of 1..P-1 exactly once, and
// element e stands for e-1, rejected when e-1 >= N. The walk keeps no state
// but the current element, and can be split into shards that visit disjoint
// parts of the cycle (ZMap's src/shard.c).
//
// The same (N, seed) always gives the same permutation.
type Cycle struct {
	n     uint64 // elements permuted
	p     uint64 // the prime modulus, smallest prime > n
	g     uint64 // a generator of (Z/pZ)*
	first uint64 // the element the walk starts at, in 1..p-1
}

// NewCycle returns the permutation of [0, n) chosen by seed. n may be 0 (an
// empty walk).
func NewCycle(n uint64, seed int64) (*Cycle, error) {
	if n > MaxCycle {
		return nil, fmt.Errorf("new cycle of %d: %w (max %d)", n, ErrCycleSize, uint64(MaxCycle))
	}
	c := &Cycle{n: n}
	if n == 0 {
		return c, nil
	}
	c.p = nextPrime(n)
	r := rand.New(rand.NewPCG(uint64(seed), 0x9e3779b97f4a7c15))
	factors := primeFactors(c.p - 1)
	if c.p == 2 {
		c.g = 1
	} else {
		for {
			g := 2 + r.Uint64N(c.p-2) // 2..p-1
			if isGenerator(g, c.p, factors) {
				c.g = g
				break
			}
		}
	}
	c.first = 1 + r.Uint64N(c.p-1)
	return c, nil
}

// N is the number of elements permuted.
func (c *Cycle) N() uint64 { return c.n }

// Prime is the group's modulus (the smallest prime above N).
func (c *Cycle) Prime() uint64 { return c.p }

// Generator is the group generator the walk multiplies by.
func (c *Cycle) Generator() uint64 { return c.g }

// Iter walks one shard of a cycle.
type Iter struct {
	n, p    uint64
	step    uint64 // g^shards mod p
	cur     uint64
	left    uint64 // group elements still to visit (accepted or rejected)
	visited uint64 // group elements visited
}

// Shard returns the walk of shard i of shards (0 <= i < shards): the group
// elements first·g^k with k ≡ i (mod shards). The shards of one cycle
// together visit every element of [0, N) exactly once.
func (c *Cycle) Shard(i, shards int) *Iter {
	if shards < 1 || i < 0 || i >= shards {
		panic(fmt.Sprintf("ipv4: shard %d of %d", i, shards))
	}
	it := &Iter{n: c.n, p: c.p}
	if c.n == 0 {
		return it
	}
	order := c.p - 1
	if uint64(i) >= order {
		return it
	}
	it.cur = mulmod(c.first, powmod(c.g, uint64(i), c.p), c.p)
	it.step = powmod(c.g, uint64(shards), c.p)
	it.left = (order - uint64(i) + uint64(shards) - 1) / uint64(shards)
	return it
}

// Next returns the next element of [0, N) of the shard, or false at its end.
func (it *Iter) Next() (uint64, bool) {
	for it.left > 0 {
		e := it.cur
		it.cur = mulmod(it.cur, it.step, it.p)
		it.left--
		it.visited++
		if e-1 < it.n {
			return e - 1, true
		}
	}
	return 0, false
}

// Visited is the number of group elements visited so far, rejected ones
// included (a progress measure: each shard visits about (P-1)/shards).
func (it *Iter) Visited() uint64 { return it.visited }

// All returns the remaining elements of the shard as an iterator.
func (it *Iter) All() iter.Seq[uint64] {
	return func(yield func(uint64) bool) {
		for {
			x, ok := it.Next()
			if !ok || !yield(x) {
				return
			}
		}
	}
}

func mulmod(a, b, m uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	_, r := bits.Div64(hi, lo, m) // hi < m since a, b < m
	return r
}

func powmod(b, e, m uint64) uint64 {
	r := uint64(1) % m
	b %= m
	for e > 0 {
		if e&1 == 1 {
			r = mulmod(r, b, m)
		}
		b = mulmod(b, b, m)
		e >>= 1
	}
	return r
}

// nextPrime is the smallest prime above n (exact: ProbablyPrime is exact
// below 2^64).
func nextPrime(n uint64) uint64 {
	x := new(big.Int)
	for c := n + 1; ; c++ {
		if x.SetUint64(c).ProbablyPrime(0) {
			return c
		}
	}
}

// primeFactors returns the distinct prime factors of n by trial division
// (n < 2^57, so at most about 2^28.5 divisions, far fewer in practice).
func primeFactors(n uint64) []uint64 {
	var fs []uint64
	for _, q := range []uint64{2, 3} {
		if n%q == 0 {
			fs = append(fs, q)
			for n%q == 0 {
				n /= q
			}
		}
	}
	for q := uint64(5); q*q <= n; q += 6 {
		for _, d := range []uint64{q, q + 2} {
			if n%d == 0 {
				fs = append(fs, d)
				for n%d == 0 {
					n /= d
				}
			}
		}
	}
	if n > 1 {
		fs = append(fs, n)
	}
	return fs
}

// isGenerator reports whether g generates (Z/pZ)*: g^((p-1)/q) != 1 for
// every prime q dividing p-1.
func isGenerator(g, p uint64, factors []uint64) bool {
	for _, q := range factors {
		if powmod(g, (p-1)/q, p) == 1 {
			return false
		}
	}
	return true
}
