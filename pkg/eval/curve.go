package eval

import (
	"math"
	"sort"
)

// Point is one point of a coverage curve: probes sent after the seed and
// services found, the seed's included; Real counts those of them on hosts
// with at most PseudoPorts ports (World.IsReal).
type Point struct {
	Probes uint64
	Found  int
	Real   int
}

// Curve is a policy's coverage as probes are spent. Between two points the
// policy is assumed to find services at a constant rate (a whole-prefix sweep
// in random order), which is how budgets cut a segment.
type Curve struct {
	Name   string
	Points []Point
	budget uint64 // 0: none
	cut    bool   // the budget ended the policy
	// ownSeed: the policy took its own seed and its probes count it, so
	// the world's fixed seed is not added to its probes_total.
	ownSeed bool
}

// SeedCost is what probes_total adds to the curve's probes: the world's
// fixed seed, unless the policy took and counted its own.
func (c *Curve) SeedCost(w *World) uint64 {
	if c.ownSeed {
		return 0
	}
	return w.SeedCost()
}

// RealAtTotal is RealAt at total probes, seed included (0 below the seed).
func (c *Curve) RealAtTotal(w *World, total uint64) float64 {
	sc := c.SeedCost(w)
	if total < sc {
		return 0
	}
	return c.RealAt(total - sc)
}

// RealTotalTo is the total probes, seed included, to find target real
// services, or -1 if never.
func (c *Curve) RealTotalTo(w *World, target float64) int64 {
	n := c.RealProbesTo(target)
	if n < 0 {
		return -1
	}
	return n + int64(c.SeedCost(w))
}

// CountsOwnSeed marks c as a policy that took and counted its own seed
// (the pipeline with the prober's own seed): no fixed seed is added to its
// probes_total.
func (c *Curve) CountsOwnSeed() { c.ownSeed = true }

func newCurve(name string, seedFound, seedReal int, budget uint64) *Curve {
	return &Curve{Name: name, Points: []Point{{0, seedFound, seedReal}}, budget: budget}
}

// End is the last point.
func (c *Curve) End() Point { return c.Points[len(c.Points)-1] }

// Spend records cost probes finding found more services, real of them real
// (World.IsReal). It reports false when the budget is exhausted (the segment
// is cut proportionally).
func (c *Curve) Spend(cost uint64, found, real int) bool {
	if c.cut {
		return false
	}
	e := c.End()
	if c.budget > 0 && e.Probes+cost >= c.budget {
		left := c.budget - e.Probes
		part, partReal := found, real
		if cost > 0 {
			part = int(float64(found) * float64(left) / float64(cost))
			partReal = int(float64(real) * float64(left) / float64(cost))
		}
		c.add(Point{c.budget, e.Found + part, e.Real + partReal})
		c.cut = true
		return false
	}
	c.add(Point{e.Probes + cost, e.Found + found, e.Real + real})
	return true
}

// add appends p, merging runs of points on one straight segment of zero
// finds so that a million fruitless probes are one segment.
func (c *Curve) add(p Point) {
	n := len(c.Points)
	if n >= 2 && c.Points[n-1].Found == p.Found && c.Points[n-2].Found == p.Found &&
		c.Points[n-1].Real == p.Real && c.Points[n-2].Real == p.Real {
		c.Points[n-1] = p
		return
	}
	c.Points = append(c.Points, p)
}

// FoundAt is the services found after x probes (the end value past the end).
func (c *Curve) FoundAt(x uint64) float64 {
	return c.at(x, foundOf)
}

// RealAt is FoundAt for real services.
func (c *Curve) RealAt(x uint64) float64 {
	return c.at(x, realOf)
}

// foundOf and realOf pick the count a question is about from a point.
func foundOf(p Point) int { return p.Found }
func realOf(p Point) int  { return p.Real }

func (c *Curve) at(x uint64, val func(Point) int) float64 {
	pts := c.Points
	i := sort.Search(len(pts), func(i int) bool { return pts[i].Probes >= x })
	if i == len(pts) {
		return float64(val(c.End()))
	}
	if pts[i].Probes == x || i == 0 {
		return float64(val(pts[i]))
	}
	a, b := pts[i-1], pts[i]
	return float64(val(a)) + float64(val(b)-val(a))*float64(x-a.Probes)/float64(b.Probes-a.Probes)
}

// ProbesTo is the probes needed to find target services, or -1 if never.
func (c *Curve) ProbesTo(target float64) int64 {
	return c.probesTo(target, foundOf)
}

// RealProbesTo is ProbesTo for real services.
func (c *Curve) RealProbesTo(target float64) int64 {
	return c.probesTo(target, realOf)
}

func (c *Curve) probesTo(target float64, val func(Point) int) int64 {
	pts := c.Points
	i := sort.Search(len(pts), func(i int) bool { return float64(val(pts[i])) >= target })
	if i == len(pts) {
		return -1
	}
	if i == 0 {
		return 0
	}
	a, b := pts[i-1], pts[i]
	frac := (target - float64(val(a))) / float64(val(b)-val(a))
	return int64(a.Probes) + int64(math.Ceil(frac*float64(b.Probes-a.Probes)))
}

// Sample returns at most n points, spaced evenly in log(probes), always with
// the first and last, for files and plots.
func (c *Curve) Sample(n int) []Point {
	pts := c.Points
	if len(pts) <= n {
		return pts
	}
	out := []Point{pts[0]}
	last := float64(pts[len(pts)-1].Probes)
	next := 1.0
	ratio := math.Pow(math.Max(last, 2), 1/float64(n-2))
	for _, p := range pts[1 : len(pts)-1] {
		if float64(p.Probes) >= next {
			out = append(out, p)
			for next <= float64(p.Probes) {
				next *= ratio
			}
		}
	}
	return append(out, pts[len(pts)-1])
}
