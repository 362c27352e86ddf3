package model

import "math/bits"

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
type arena[T any] struct {
	chunks  [][]T
	next    uint32 // offset of the first element never handed out
	free    [maxClass + 1][]uint32
	big     [][]T
	bigFree []uint32
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

func (a *arena[T]) alloc(class uint8) uint32 {
	if class > maxClass {
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
	if f := a.free[class]; len(f) > 0 {
		off := f[len(f)-1]
		a.free[class] = f[:len(f)-1]
		return off
	}
	size := uint32(1) << class
	in := a.next & chunkMask
	if in != 0 && in+size > chunkLen {
		// The last chunk is full grown here (chunk lengths are powers of
		// two >= in > chunkLen/2): give its rest to the free lists.
		a.releaseRange(a.next, chunkLen-in)
		a.next += chunkLen - in
		in = 0
	}
	c := int(a.next >> chunkShift)
	if c == len(a.chunks) {
		if c >= 1<<(31-chunkShift) {
			panic("model: arena full")
		}
		// The first chunk grows from small (small models stay small);
		// the next ones are made whole.
		n := chunkLen
		if c == 0 {
			n = max(int(size), minChunk)
		}
		a.chunks = append(a.chunks, make([]T, n))
	}
	if need := int(in + size); need > len(a.chunks[c]) {
		n := min(max(2*len(a.chunks[c]), 1<<bits.Len(uint(need-1))), chunkLen)
		nc := make([]T, n)
		copy(nc, a.chunks[c])
		a.chunks[c] = nc
	}
	off := a.next
	a.next += size
	return off
}

// release frees the block at off.
func (a *arena[T]) release(off uint32, class uint8) {
	if off&bigBit != 0 {
		a.big[off&^bigBit] = nil
		a.bigFree = append(a.bigFree, off&^bigBit)
		return
	}
	a.free[class] = append(a.free[class], off)
}

// releaseRange frees n elements from off as blocks of powers of two.
func (a *arena[T]) releaseRange(off, n uint32) {
	for n > 0 {
		c := min(uint8(bits.Len32(n)-1), maxClass)
		a.release(off, c)
		off += 1 << c
		n -= 1 << c
	}
}

// resize moves the n elements at off (a block of classOf(n)) into a block
// for m elements when the class changes, and returns the new offset.
func (a *arena[T]) resize(off uint32, n, m int) uint32 {
	oc, nc := classOf(n), classOf(m)
	if n == 0 {
		return a.alloc(nc)
	}
	if oc == nc {
		return off
	}
	no := a.alloc(nc)
	copy(a.block(no, min(n, m)), a.block(off, min(n, m)))
	a.release(off, oc)
	return no
}

// bytes is the memory the arena holds.
func (a *arena[T]) bytes(elem uintptr) uint64 {
	var n uint64
	for _, c := range a.chunks {
		n += uint64(len(c)) * uint64(elem)
	}
	for _, f := range a.free {
		n += uint64(cap(f)) * 4
	}
	for _, b := range a.big {
		n += uint64(len(b)) * uint64(elem)
	}
	return n
}
