package schedule

// itemHeap is the queue of pending items, highest yield first, then first
// pushed (seq). Each entry holds a copy of its item's yield and seq, so that
// a comparison reads the heap's own array, not two items elsewhere in
// memory: a replay releases millions of items. The sifts are
// container/heap's, typed (no interface calls), moving an element into a
// hole instead of swapping: the same comparisons, so the same order.
type itemHeap []entry

type entry struct {
	yield float64
	seq   uint64
	it    *item
}

func (e *entry) before(o *entry) bool {
	if e.yield != o.yield {
		return e.yield > o.yield
	}
	return e.seq < o.seq
}

// push adds it, with its yield and seq as they are now.
func (h *itemHeap) push(it *item) {
	*h = append(*h, entry{it.yield, it.seq, it})
	h.up(len(*h) - 1)
}

// pop takes the first item out.
func (h *itemHeap) pop() *item {
	q := *h
	n := len(q) - 1
	top := q[0].it
	if n > 0 {
		q[0] = q[n]
		q[0].it.idx = 0
	}
	q[n] = entry{}
	*h = q[:n]
	if n > 0 {
		h.down(0)
	}
	top.idx = -1
	return top
}

// fix puts the item at i in its place after its yield or seq changed.
func (h itemHeap) fix(i int) {
	h[i].yield, h[i].seq = h[i].it.yield, h[i].it.seq
	if !h.down(i) {
		h.up(i)
	}
}

func (h itemHeap) up(j int) {
	e := h[j]
	for j > 0 {
		i := (j - 1) / 2 // parent
		if !e.before(&h[i]) {
			break
		}
		h[j] = h[i]
		h[j].it.idx = j
		j = i
	}
	h[j] = e
	e.it.idx = j
}

// down reports whether the element at i0 moved.
func (h itemHeap) down(i0 int) bool {
	n := len(h)
	e := h[i0]
	i := i0
	for {
		j := 2*i + 1
		if j >= n || j < 0 { // j < 0: int overflow
			break
		}
		if j2 := j + 1; j2 < n && h[j2].before(&h[j]) {
			j = j2
		}
		if !h[j].before(&e) {
			break
		}
		h[i] = h[j]
		h[i].it.idx = i
		i = j
	}
	h[i] = e
	e.it.idx = i
	return i > i0
}
