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
	heap    []ordered
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

// bucket is a min-heap by order of the hosts that share k ports (their
// indexes as keys).
func (s *nearScratch) bucket(k int, order func(int32) uint64) []ordered {
	h := s.heap[:0]
	for _, i := range s.touched {
		if int(s.shared[i]) == k {
			h = append(h, ordered{order(i), uint32(i)})
		}
	}
	heapify(h)
	s.heap = h
	return h
}
