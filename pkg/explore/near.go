package explore

// foundHost is a found host as probeFound sees it: its address and how
// many ports it was found on.
type foundHost struct {
	addr  uint32
	ports int
}

// nearScratch counts shared ports per found host across probeFound's
// calls without clearing: a count is live only where its mark is the
// call's generation.
type nearScratch struct {
	gen     uint32
	mark    []uint32
	shared  []int32
	touched []int32
	heap    []nearHost
}

// nearHost is a candidate in the order of its ties.
type nearHost struct {
	order uint64
	idx   int32
}

// next starts a call over n found hosts.
func (s *nearScratch) next(n int) {
	s.gen++
	if s.gen == 0 { // wrapped: no mark may look current
		clear(s.mark)
		s.gen = 1
	}
	if n > len(s.mark) {
		s.mark = append(s.mark, make([]uint32, n-len(s.mark))...)
		s.shared = append(s.shared, make([]int32, n-len(s.shared))...)
	}
	s.touched = s.touched[:0]
}

// add counts one more shared port for host i and returns its count.
func (s *nearScratch) add(i int32) int {
	if s.mark[i] != s.gen {
		s.mark[i], s.shared[i] = s.gen, 0
		s.touched = append(s.touched, i)
	}
	s.shared[i]++
	return int(s.shared[i])
}

// bucket is a min-heap by order of the hosts that share k ports.
func (s *nearScratch) bucket(k int, order func(int32) uint64) []nearHost {
	h := s.heap[:0]
	for _, i := range s.touched {
		if int(s.shared[i]) == k {
			h = append(h, nearHost{order(i), i})
		}
	}
	for j := len(h)/2 - 1; j >= 0; j-- {
		siftNear(h, j)
	}
	s.heap = h
	return h
}

// popNear takes the least order off the heap h.
func popNear(h []nearHost) (nearHost, []nearHost) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	siftNear(h, 0)
	return top, h
}

func siftNear(h []nearHost, j int) {
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
