package model

import (
	"math/bits"
	"sync"
)

// The model keeps its many small lists (count lists of keys, key lists of
// services, services of hosts) in arenas: big pointer-free chunks carved into
// blocks of 1<<class elements, addressed by a uint32 offset. That makes no
// allocation per list and nothing for the garbage collector to scan.
const (
	chunkShift = 20
	chunkLen   = 1 << chunkShift
	chunkMask  = chunkLen - 1
	maxClass   = 16 // the largest block in chunks: 65536 elements (every port)
	minChunk   = 1 << 10
	// bigBit marks the offset of a block larger than maxClass (the key or
	// feature list of a service with a huge banner): it has a slice of its
	// own, a.big[off&^bigBit].
	bigBit = 1 << 31
)

// arena hands out blocks of 1<<class elements. Freed blocks go to a free
// list per class. Only the last chunk grows (by copying), so a slice of a
// block is valid only until the next alloc on the same arena.
//
// Blocks come from a shard: the arena's own (main), or, while goroutines
// change disjoint lists of the arena at once (a parallel flush), one shard
// each, from split to join. A shard has its own free lists and carves its
// own chunks, so that only taking a new chunk needs the lock, and chunks
// sit in a fixed array, so that one is added without moving the others
// under a reader.
type arena[T any] struct {
	chunks  *[maxChunks][]T
	nchunks int // guarded by mu while shards are out
	main    shard
	big     [][]T
	bigFree []uint32
	mu      sync.Mutex
}

// maxChunks is how many chunks offsets below bigBit address.
const maxChunks = 1 << (31 - chunkShift)

// shard is a source of blocks: free lists, and the rest [next, end) of a
// chunk to carve (next == end: none).
type shard struct {
	next, end uint32
	free      [maxClass + 1][]uint32
}

// classOf is the class of the smallest block holding n elements.
func classOf(n int) uint8 {
	if n <= 1 {
		return 0
	}
	return uint8(bits.Len(uint(n - 1)))
}

// at is the element at off, in a block of at most maxClass.
func (a *arena[T]) at(off uint32) *T { return &a.chunks[off>>chunkShift][off&chunkMask] }

// block is the n elements at off.
func (a *arena[T]) block(off uint32, n int) []T {
	if n == 0 {
		return nil
	}
	if off&bigBit != 0 {
		return a.big[off&^bigBit][:n:n]
	}
	c := a.chunks[off>>chunkShift]
	i := int(off & chunkMask)
	return c[i : i+n : i+n]
}

func (a *arena[T]) alloc(class uint8) uint32 { return a.allocIn(&a.main, class) }

func (a *arena[T]) release(off uint32, class uint8) { a.releaseIn(&a.main, off, class) }

func (a *arena[T]) resize(off uint32, n, m int) uint32 { return a.resizeIn(&a.main, off, n, m) }

// allocIn hands out a block of class from shard s.
func (a *arena[T]) allocIn(s *shard, class uint8) uint32 {
	if class > maxClass {
		if s != &a.main {
			panic("model: a big block from a shard")
		}
		b := make([]T, 1<<class)
		if n := len(a.bigFree); n > 0 {
			i := a.bigFree[n-1]
			a.bigFree = a.bigFree[:n-1]
			a.big[i] = b
			return bigBit | i
		}
		a.big = append(a.big, b)
		return bigBit | uint32(len(a.big)-1)
	}
	if f := s.free[class]; len(f) > 0 {
		off := f[len(f)-1]
		s.free[class] = f[:len(f)-1]
		return off
	}
	size := uint32(1) << class
	if s.end-s.next < size {
		// The rest is too small: give it to the free lists, and carve the
		// smallest larger free block, or else a new chunk. (Without that, a
		// big free block, such as the rest of a shard's chunk, would wait
		// for a block of its own class, which may never come.)
		a.releaseRange(s, s.next, s.end-s.next)
		s.next, s.end = 0, 0
		for c := class + 1; c <= maxClass; c++ {
			if f := s.free[c]; len(f) > 0 {
				s.next = f[len(f)-1]
				s.end = s.next + 1<<c
				s.free[c] = f[:len(f)-1]
				break
			}
		}
		if s.next == s.end {
			s.next, s.end = a.newChunk(size, s == &a.main)
		}
	}
	c := s.next >> chunkShift
	if need := int(s.next&chunkMask + size); need > len(a.chunks[c]) {
		// Only the first chunk is ever short (see newChunk), and only the
		// main shard carves it (split makes it whole first).
		n := min(max(2*len(a.chunks[c]), 1<<bits.Len(uint(need-1))), chunkLen)
		nc := make([]T, n)
		copy(nc, a.chunks[c])
		a.chunks[c] = nc
	}
	off := s.next
	s.next += size
	return off
}

// newChunk adds a chunk and returns its range. The first one of the main
// shard starts small and grows (small models stay small); any other is
// made whole (the rest of a shard's chunk is freed when it joins).
func (a *arena[T]) newChunk(size uint32, main bool) (uint32, uint32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.chunks == nil {
		a.chunks = new([maxChunks][]T)
	}
	c := a.nchunks
	if c == maxChunks {
		panic("model: arena full")
	}
	n := chunkLen
	if c == 0 && main {
		n = max(int(size), minChunk)
	}
	a.chunks[c] = make([]T, n)
	a.nchunks++
	return uint32(c) << chunkShift, uint32(c+1) << chunkShift
}

// releaseIn frees the block at off into shard s.
func (a *arena[T]) releaseIn(s *shard, off uint32, class uint8) {
	if off&bigBit != 0 {
		a.big[off&^bigBit] = nil
		a.bigFree = append(a.bigFree, off&^bigBit)
		return
	}
	s.free[class] = append(s.free[class], off)
}

// releaseRange frees n elements from off into shard s as blocks of powers
// of two.
func (a *arena[T]) releaseRange(s *shard, off, n uint32) {
	for n > 0 {
		c := min(uint8(bits.Len32(n)-1), maxClass)
		a.releaseIn(s, off, c)
		off += 1 << c
		n -= 1 << c
	}
}

// resizeIn moves the n elements at off (a block of classOf(n)) into a block
// for m elements from shard s when the class changes, and returns the new
// offset.
func (a *arena[T]) resizeIn(s *shard, off uint32, n, m int) uint32 {
	oc, nc := classOf(n), classOf(m)
	if n == 0 {
		return a.allocIn(s, nc)
	}
	if oc == nc {
		return off
	}
	no := a.allocIn(s, nc)
	copy(a.block(no, min(n, m)), a.block(off, min(n, m)))
	a.releaseIn(s, off, oc)
	return no
}

// split hands the main shard's blocks to shards out (its free lists in
// equal parts, its chunk to the first), for goroutines that each change
// their own lists, one shard each, until join.
func (a *arena[T]) split(out []shard) {
	m := &a.main
	if m.next < m.end {
		if c := m.next >> chunkShift; len(a.chunks[c]) < chunkLen {
			nc := make([]T, chunkLen) // whole, so that a shard never grows it
			copy(nc, a.chunks[c])
			a.chunks[c] = nc
		}
	}
	for i := range out {
		out[i] = shard{}
	}
	out[0].next, out[0].end = m.next, m.end
	m.next, m.end = 0, 0
	for c, f := range m.free {
		for i := range out {
			lo, hi := len(f)*i/len(out), len(f)*(i+1)/len(out)
			out[i].free[c] = append(out[i].free[c], f[lo:hi]...)
		}
		m.free[c] = f[:0]
	}
}

// join takes the blocks of shards back into the main shard: their free
// lists, and the rest of their chunks (the first rest to carve on, the
// others freed).
func (a *arena[T]) join(shards []shard) {
	m := &a.main
	for i := range shards {
		s := &shards[i]
		for c, f := range s.free {
			m.free[c] = append(m.free[c], f...)
		}
		if m.next == m.end {
			m.next, m.end = s.next, s.end
		} else {
			a.releaseRange(m, s.next, s.end-s.next)
		}
		shards[i] = shard{}
	}
}

// bytes is the memory the arena holds.
func (a *arena[T]) bytes(elem uintptr) uint64 {
	var n uint64
	for c := range a.nchunks {
		n += uint64(len(a.chunks[c])) * uint64(elem)
	}
	for _, f := range a.main.free {
		n += uint64(cap(f)) * 4
	}
	for _, b := range a.big {
		n += uint64(len(b)) * uint64(elem)
	}
	return n
}
