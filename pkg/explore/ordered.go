package explore

// ordered is a key in a fixed pseudo-random order: the element of the
// min-heaps that hand out found hosts (the random order of host seeds,
// probeFound's ties).
type ordered struct {
	order uint64
	key   uint32
}

// heapify makes h a min-heap by order.
func heapify(h []ordered) {
	for j := len(h)/2 - 1; j >= 0; j-- {
		siftDown(h, j)
	}
}

// pushOrdered adds x to the heap h.
func pushOrdered(h []ordered, x ordered) []ordered {
	h = append(h, x)
	for j := len(h) - 1; j > 0; {
		up := (j - 1) / 2
		if h[up].order <= h[j].order {
			break
		}
		h[up], h[j] = h[j], h[up]
		j = up
	}
	return h
}

// popOrdered takes the least order off the heap h.
func popOrdered(h []ordered) (ordered, []ordered) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	siftDown(h, 0)
	return top, h
}

func siftDown(h []ordered, j int) {
	for {
		l := 2*j + 1
		if l >= len(h) {
			return
		}
		m := l
		if r := l + 1; r < len(h) && h[r].order < h[l].order {
			m = r
		}
		if h[j].order <= h[m].order {
			return
		}
		h[j], h[m] = h[m], h[j]
		j = m
	}
}
