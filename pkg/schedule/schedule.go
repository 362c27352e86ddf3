// Package schedule holds all of a scanner's pending probe work and releases
// it in order of expected services per probe, under a probe budget and a
// packet rate. Work is single probes (predictions, at their probability) and
// sweeps (one port over one prefix), which are cut into chunks so that a
// prediction pushed while a sweep runs goes before the sweep's next chunk.
// A sweep's yield learns from the hits its chunks report (see Sweep).
//
// One Scheduler serves the prober (a real clock) and the offline replay of
// gps eval (a simulated clock), so that the two cannot drift apart.
//
// Memory: one item per pending prediction (about 120 bytes with its map
// entry, which keeps one per target), one record per
// sweep (about 200 bytes, whatever the sweep's size), one counter per
// pending token, and a map entry per single probe released so far (about
// 40 bytes each, kept for the Scheduler's life so that no target is sent
// twice). Sweeps keep no per-address state: which chunks are released is
// a cursor into a fixed permutation of the sweep's chunks.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"
)

// ErrBudget is returned by Next and TryNext once the budget is spent.
var ErrBudget = errors.New("probe budget spent")

// DefaultChunk is the addresses of a sweep released at once: a /24.
const DefaultChunk = 256

// Target is one probe: an address and a port.
type Target struct {
	Addr uint32
	Port uint16
}

// Sweep is one port over every address of Prefix/Bits (but the skipped).
//
// Its yield, the expected services per probe of its next chunk, is the
// posterior mean of a Beta prior worth PriorProbes probes:
//
//	yield = (PriorHits*w + hits) / (PriorProbes*w + probed)
//
// where hits and probed are what its released chunks reported and w is
// Config.PriorWeight. Before any chunk it is PriorHits/PriorProbes; a sweep
// that finds less than expected falls down the queue, one that finds more
// rises, and the prior weighs as much as PriorProbes*w probes of evidence.
// For a sweep planned from a seed sample, PriorHits is the seed's finds in
// the prefix and PriorProbes the seed addresses there: the seed is the
// evidence the prior rests on.
type Sweep struct {
	Prefix      uint32
	Bits        int // prefix length, 0..32
	Port        uint16
	PriorHits   float64
	PriorProbes float64
	// Skip, if not nil, is what this sweep leaves out instead of
	// Config.Skip (e.g. the seed's addresses inside Prefix, as the prober
	// learns them from its targets message).
	Skip Skip
}

// Kind says what a Work is.
type Kind uint8

const (
	// Probe is a single probe of Work.Target.
	Probe Kind = iota + 1
	// Chunk is Work.Port on the addresses First..Last, but the skipped.
	Chunk
	// Seed is every port 1..Work.Port of the address First (= Last): a
	// sample that teaches the model what runs there (see PushSeed).
	Seed
)

// Work is what the Scheduler releases. Every Work must be given back to
// Report once probed, so that sweeps learn and tokens complete.
type Work struct {
	Kind   Kind
	Target Target // Probe: the probe
	Port   uint16
	First  uint32 // first address (a Probe's own)
	Last   uint32 // last address, inclusive
	Probes uint64 // probes the work takes: its addresses less the skipped
	Yield  float64
	Token  any // the token the work was pushed with

	sw   *sweep
	skip Skip
}

// Targets are the work's probes in address order, skipped addresses left out.
func (w Work) Targets() iter.Seq[Target] {
	return func(yield func(Target) bool) {
		if w.Kind == Probe {
			yield(w.Target)
			return
		}
		if w.Kind == Seed {
			for p := 1; p <= int(w.Port); p++ {
				if !yield(Target{Addr: w.First, Port: uint16(p)}) {
					return
				}
			}
			return
		}
		for a := uint64(w.First); a <= uint64(w.Last); a++ {
			if w.skip != nil && w.skip.Contains(uint32(a)) {
				continue
			}
			if !yield(Target{Addr: uint32(a), Port: w.Port}) {
				return
			}
		}
	}
}

// Skip is a set of addresses that sweeps leave out (a seed's addresses,
// scanned on every port already).
type Skip interface {
	Contains(addr uint32) bool
	// Count is how many of first..last (inclusive) are in the set.
	Count(first, last uint32) uint64
}

// Config configures a Scheduler.
type Config struct {
	Budget uint64  // probes; 0: no limit
	Rate   float64 // probes per second; 0: no limit
	// Chunk is the addresses of a sweep released at once, a power of two
	// (a sweep smaller than it is one chunk); 0: DefaultChunk.
	Chunk uint64
	// PriorWeight scales every sweep's prior evidence; 0: 1. NoLearning
	// keeps every sweep at its prior yield.
	PriorWeight float64
	NoLearning  bool
	Skip        Skip  // nil: none
	Clock       Clock // nil: RealClock
	// Done, if not nil, is called with a token once every item pushed with
	// it is probed and reported or dropped as a duplicate (never with the
	// Scheduler's lock held). Tokens must be comparable; nil is not tracked.
	Done func(token any)
}

// Stats say what a Scheduler has done.
type Stats struct {
	Probes      uint64 // released, chunks' and single
	Predictions int    // single probes released
	Chunks      int    // chunks released
	Sweeps      int    // sweeps with a chunk released
	Dropped     int    // predictions dropped: sent before, inside a released chunk, or pending at a higher probability
	Seeds       int    // addresses seeded (every port)
}

// Scheduler holds pending work. Its methods are safe for concurrent use.
type Scheduler struct {
	c     Config
	clock Clock

	mu  sync.Mutex
	q   itemHeap
	seq uint64
	// probes holds the single probes by target (targetKey): a pending
	// one's item, or sentMark once released. One map, so that a push or a
	// release looks a target up once.
	probes   map[uint64]*item
	seeded   map[uint32]struct{} // addresses pushed as seeds (released or pending)
	sweeps   map[uint64]*sweep   // by sweepKey
	bits     []int               // distinct prefix lengths of the sweeps
	tokens   map[any]int
	started  bool
	start    time.Time
	released uint64
	stats    Stats
	// wake is closed on the next push, made when a caller of Next waits
	// (nil: none waits): a replay, which never waits, makes none.
	wake chan struct{}
}

// New returns an empty Scheduler.
func New(c Config) (*Scheduler, error) {
	if c.Chunk == 0 {
		c.Chunk = DefaultChunk
	}
	if c.Chunk&(c.Chunk-1) != 0 || c.Chunk > 1<<32 {
		return nil, fmt.Errorf("make scheduler: chunk %d is not a power of two up to 2^32", c.Chunk)
	}
	if c.PriorWeight == 0 {
		c.PriorWeight = 1
	}
	if c.PriorWeight < 0 || c.Rate < 0 {
		return nil, fmt.Errorf("make scheduler: prior weight %g and rate %g must not be negative", c.PriorWeight, c.Rate)
	}
	s := &Scheduler{c: c, clock: c.Clock, probes: map[uint64]*item{}, seeded: map[uint32]struct{}{}, sweeps: map[uint64]*sweep{},
		tokens: map[any]int{}}
	if s.clock == nil {
		s.clock = RealClock{}
	}
	return s, nil
}

// sentMark is the probes entry of a single probe released.
var sentMark = &item{}

// targetKey is t as a map key: an integer hashes faster than a struct.
func targetKey(t Target) uint64 { return uint64(t.Addr)<<16 | uint64(t.Port) }

// sweepKey is a sweep's (prefix, bits, port) as a map key.
func sweepKey(prefix uint32, bits int, port uint16) uint64 {
	return uint64(prefix)<<24 | uint64(bits)<<16 | uint64(port)
}

type sweep struct {
	Sweep
	token       any
	size        uint64 // addresses per chunk
	n           uint64 // chunks
	next        uint64 // chunks released: positions 0..next-1 of the permutation
	mult, off   uint64 // chunk at position p is (p*mult + off) mod n
	inv         uint64 // mult's inverse mod n
	open        int    // chunks released and not reported
	hits        float64
	probed      float64
	item        *item // its place in the queue, nil when none
	reportedAll bool
}

type item struct {
	yield float64
	seq   uint64
	probe Target
	sw    *sweep // nil: a probe or a seed
	seed  bool   // probe.Addr on every port
	token any
	idx   int
}

// Push queues a prediction of t at probability p. A prediction of a target
// already pending keeps the higher probability: pushed higher, the pending
// one is raised and takes token (its old token completes, as if dropped);
// pushed no higher, it is dropped.
func (s *Scheduler) Push(t Target, p float64, token any) {
	s.mu.Lock()
	var done any
	k := targetKey(t)
	switch x := s.probes[k]; {
	case x == sentMark || s.swept(t):
		s.stats.Dropped++
		done = token
	case x == nil:
		s.addToken(token)
		it := &item{yield: p, probe: t, token: token}
		s.probes[k] = it
		s.push(it)
	case p > x.yield:
		s.stats.Dropped++
		done = x.token
		s.tokens[done]--
		s.addToken(token)
		x.token, x.yield, x.seq = token, p, s.seq
		s.seq++
		s.q.fix(x.idx)
		s.wakeUp()
	default:
		s.stats.Dropped++
		done = token
	}
	s.mu.Unlock()
	s.doneIf(done)
}

// PushSweep queues a sweep. A sweep of a (prefix, bits, port) pushed before
// is dropped.
func (s *Scheduler) PushSweep(sw Sweep, token any) error {
	if sw.Bits < 0 || sw.Bits > 32 || sw.PriorProbes <= 0 || sw.PriorHits < 0 {
		return fmt.Errorf("push sweep %d/%d port %d: want bits 0..32, prior probes > 0 and prior hits >= 0, have %g and %g",
			sw.Prefix, sw.Bits, sw.Port, sw.PriorProbes, sw.PriorHits)
	}
	sw.Prefix = mask(sw.Prefix, sw.Bits)
	k := sweepKey(sw.Prefix, sw.Bits, sw.Port)
	s.mu.Lock()
	if _, dup := s.sweeps[k]; dup {
		s.mu.Unlock()
		s.doneIf(token)
		return nil
	}
	x := &sweep{Sweep: sw, token: token}
	span := uint64(1) << (32 - sw.Bits)
	x.size = min(s.c.Chunk, span)
	x.n = span / x.size
	// A fixed odd multiplier and offset from the key: chunks come out
	// spread over the prefix, so that the first ones are a fair sample of
	// the sweep's yield, and the same way on every run.
	h := mix(uint64(sw.Prefix)<<24 ^ uint64(sw.Bits)<<16 ^ uint64(sw.Port))
	x.mult, x.off = (h|1)&(x.n-1), (h>>32)&(x.n-1)
	if x.n == 1 {
		x.mult = 1
	}
	x.inv = inverse(x.mult) & (x.n - 1)
	s.sweeps[k] = x
	if !containsInt(s.bits, sw.Bits) {
		s.bits = append(s.bits, sw.Bits)
	}
	s.addToken(token)
	x.item = &item{yield: s.yieldOf(x), sw: x, token: token}
	s.push(x.item)
	s.mu.Unlock()
	return nil
}

// Open keeps token from completing until Close: a caller that pushes
// several items under one token (the targets of one bus message) is not
// told it is done between two pushes, when the first is already probed.
// A token opened and closed with nothing pushed completes at Close.
func (s *Scheduler) Open(token any) {
	s.mu.Lock()
	s.addToken(token)
	s.mu.Unlock()
}

// Close ends what Open began.
func (s *Scheduler) Close(token any) {
	if token == nil {
		return
	}
	s.mu.Lock()
	s.tokens[token]--
	s.mu.Unlock()
	s.doneIf(token)
}

// Len is the number of pending items (a sweep is one, whatever is left of it).
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.q)
}

// Stats returns what the Scheduler has done so far.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Next releases the work of highest yield, waiting for the rate and, when
// nothing is pending, for a push. It returns ErrBudget once the budget is
// spent, and ctx's error when ctx ends.
func (s *Scheduler) Next(ctx context.Context) (Work, error) {
	for {
		s.mu.Lock()
		if s.wake == nil {
			s.wake = make(chan struct{})
		}
		wake := s.wake
		s.mu.Unlock()
		w, ok, err := s.TryNext(ctx)
		if err != nil || ok {
			return w, err
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return Work{}, ctx.Err()
		}
	}
}

// TryNext is Next without waiting for work: ok is false when nothing is
// pending. It still waits for the rate.
func (s *Scheduler) TryNext(ctx context.Context) (w Work, ok bool, err error) {
	var dropped []any
	defer func() {
		for _, t := range dropped {
			s.doneIf(t)
		}
	}()
	for {
		s.mu.Lock()
		if s.c.Budget > 0 && s.released >= s.c.Budget {
			s.mu.Unlock()
			return Work{}, false, ErrBudget
		}
		now := s.clock.Now()
		if !s.started {
			s.started, s.start = true, now
		}
		if s.c.Rate > 0 {
			due := s.start.Add(time.Duration(float64(s.released) / s.c.Rate * float64(time.Second)))
			if wait := due.Sub(now); wait > 0 {
				s.mu.Unlock()
				if err := s.clock.Sleep(ctx, wait); err != nil {
					return Work{}, false, err
				}
				continue
			}
		}
		w, ok, dropped = s.pick(dropped)
		s.mu.Unlock()
		return w, ok, nil
	}
}

// pick pops work until one is worth releasing; s.mu is held.
func (s *Scheduler) pick(dropped []any) (Work, bool, []any) {
	for len(s.q) > 0 {
		it := s.q[0].it
		if it.seed {
			s.q.pop()
			return s.releaseSeed(it), true, dropped
		}
		if it.sw == nil {
			s.q.pop()
			k := targetKey(it.probe)
			if s.swept(it.probe) { // pending, so not sent
				delete(s.probes, k)
				s.stats.Dropped++
				s.tokens[it.token]-- // the count is checked in doneIf
				dropped = append(dropped, it.token)
				continue
			}
			s.probes[k] = sentMark
			s.released++
			s.stats.Probes++
			s.stats.Predictions++
			return Work{Kind: Probe, Target: it.probe, Port: it.probe.Port, First: it.probe.Addr, Last: it.probe.Addr,
				Probes: 1, Yield: it.yield, Token: it.token}, true, dropped
		}
		x := it.sw
		c := (x.next*x.mult + x.off) & (x.n - 1)
		if x.next == 0 {
			s.stats.Sweeps++
		}
		x.next++
		if x.next == x.n {
			s.q.pop()
			x.item = nil
		}
		first := x.Prefix + uint32(c*x.size)
		last := first + uint32(x.size-1)
		cost := x.size
		skip := x.Skip
		if skip == nil {
			skip = s.c.Skip
		}
		if skip != nil {
			cost -= skip.Count(first, last)
		}
		if s.c.Budget > 0 && s.released+cost > s.c.Budget {
			last = cut(skip, first, last, s.c.Budget-s.released)
			cost = s.c.Budget - s.released
		}
		if cost == 0 {
			// nothing to probe: the chunk counts as reported
			s.checkSweepDone(x, &dropped)
			continue
		}
		x.open++
		s.released += cost
		s.stats.Probes += cost
		s.stats.Chunks++
		return Work{Kind: Chunk, Port: x.Port, First: first, Last: last,
			Probes: cost, Yield: it.yield, Token: x.token, sw: x, skip: skip}, true, dropped
	}
	return Work{}, false, dropped
}

// cut returns the last address of first.. that holds exactly n probes.
func cut(skip Skip, first, last uint32, n uint64) uint32 {
	if skip == nil {
		return first + uint32(n-1)
	}
	lo, hi := uint64(first), uint64(last) // the answer is in lo..hi
	for lo < hi {
		mid := (lo + hi) / 2
		if mid-uint64(first)+1-skip.Count(first, uint32(mid)) >= n {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return uint32(lo)
}

// Report gives back released work with the services it found, so that its
// sweep's yield learns and its token completes.
func (s *Scheduler) Report(w Work, hits int) {
	s.mu.Lock()
	if w.Kind == Probe || w.Kind == Seed {
		s.tokens[w.Token]--
		s.mu.Unlock()
		s.doneIf(w.Token)
		return
	}
	x := w.sw
	x.open--
	x.hits += float64(hits)
	x.probed += float64(w.Probes)
	if x.item != nil {
		x.item.yield = s.yieldOf(x)
		s.q.fix(x.item.idx)
	}
	var done []any
	s.checkSweepDone(x, &done)
	s.mu.Unlock()
	for _, t := range done {
		s.doneIf(t)
	}
}

// checkSweepDone counts the sweep's token down once all of its chunks are
// released and reported; s.mu is held.
func (s *Scheduler) checkSweepDone(x *sweep, done *[]any) {
	if x.next == x.n && x.open == 0 && !x.reportedAll {
		x.reportedAll = true
		s.tokens[x.token]--
		*done = append(*done, x.token)
	}
}

func (s *Scheduler) yieldOf(x *sweep) float64 {
	if s.c.NoLearning {
		return x.PriorHits / x.PriorProbes
	}
	w := s.c.PriorWeight
	return (x.PriorHits*w + x.hits) / (x.PriorProbes*w + x.probed)
}

// Sent reports whether t was released as a single probe: a service a
// chunk finds there was found before (the caller reports it to the
// chunk's sweep as no hit, as a replay that counts only new services does).
func (s *Scheduler) Sent(t Target) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.probes[targetKey(t)] == sentMark
}

// swept reports whether t is seeded or lies in a released chunk of a sweep
// of its port; s.mu is held. With a single probe sent before, it is what
// drops a prediction of t.
func (s *Scheduler) swept(t Target) bool {
	if _, ok := s.seeded[t.Addr]; ok {
		return true // seeded, or about to be: the seed probes every port
	}
	for _, b := range s.bits {
		x := s.sweeps[sweepKey(mask(t.Addr, b), b, t.Port)]
		if x == nil || x.next == 0 {
			continue
		}
		c := uint64(t.Addr-x.Prefix) / x.size
		if pos := ((c - x.off) * x.inv) & (x.n - 1); pos < x.next {
			return true
		}
	}
	return false
}

func (s *Scheduler) addToken(t any) {
	if t != nil {
		s.tokens[t]++
	}
}

// doneIf calls Done for t if nothing pushed with t is pending (a token whose
// only item was dropped on push was never counted); s.mu is not held.
func (s *Scheduler) doneIf(t any) {
	if t == nil {
		return
	}
	s.mu.Lock()
	n, ok := s.tokens[t]
	done := !ok || n <= 0
	if ok && done {
		delete(s.tokens, t)
	}
	s.mu.Unlock()
	if done && s.c.Done != nil {
		s.c.Done(t)
	}
}

func (s *Scheduler) push(it *item) {
	it.seq = s.seq
	s.seq++
	s.q.push(it)
	s.wakeUp()
}

// wakeUp wakes the callers of Next waiting for work; s.mu is held.
func (s *Scheduler) wakeUp() {
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
}

func mask(addr uint32, b int) uint32 {
	if b == 0 {
		return 0
	}
	return addr &^ (1<<(32-b) - 1)
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// mix is splitmix64's finalizer.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// inverse is the inverse of odd a mod 2^64 (Newton's iteration; each step
// doubles the correct low bits), so also mod any smaller power of two.
func inverse(a uint64) uint64 {
	x := a // correct to 3 bits for odd a
	for range 5 {
		x *= 2 - a*x
	}
	return x
}
