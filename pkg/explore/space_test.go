package explore

import "testing"

// TestCyclicVisitsEachOnce: over one cycle the order visits every index of
// 0..n-1 exactly once, for sizes that are and are not powers of two, and
// the next cycle repeats it.
func TestCyclicVisitsEachOnce(t *testing.T) {
	for _, n := range []uint64{1, 2, 3, 100, 1 << 12, 254 << 8} {
		c := NewCyclic(n, 42)
		seen := make([]bool, n)
		first := make([]uint64, n)
		for j := range n {
			x := c.Next()
			if x >= n || seen[x] {
				t.Fatalf("n=%d: step %d gives %d (seen %v)", n, j, x, x < n && seen[x])
			}
			seen[x], first[j] = true, x
		}
		for j := range n {
			if x := c.Next(); x != first[j] {
				t.Fatalf("n=%d: second cycle step %d gives %d, first gave %d", n, j, x, first[j])
			}
		}
	}
}

// TestCyclicIsSpread: the first 1 % of the order is spread over the space
// (every tenth of it gets a share), so a small seed is a fair sample.
func TestCyclicIsSpread(t *testing.T) {
	const n = 64 << 16
	c := NewCyclic(n, 7)
	var tenths [10]int
	for range n / 100 {
		tenths[c.Next()*10/n]++
	}
	for i, k := range tenths {
		if k < n/1000*8/10 || k > n/1000*12/10 {
			t.Fatalf("tenth %d holds %d of the first %d, want about %d", i, k, n/100, n/1000)
		}
	}
}
