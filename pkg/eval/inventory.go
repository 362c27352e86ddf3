package eval

import (
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/row"
)

// entry is one service an inventory holds.
type entry struct {
	rows  []row.Service // as last seen (a banner may have changed)
	cycle int           // the cycle it was last confirmed in
	at    float64       // and the probes of that cycle sent before, seed included
	fails int           // failed refreshes since
}

// inventory is what a policy holds across cycles: the services it found
// or confirmed, each with when it last answered. Time is in cycles: a
// policy sends a cycle's probes evenly over the cycle, in the order it
// sends them, so a confirmation after x of the cycle's P probes is at
// cycle + x/P.
type inventory struct {
	held  map[gps.Target]*entry
	spent map[int]uint64 // each cycle's probes, seed included, once it ends
}

func newInventory() *inventory {
	return &inventory{held: map[gps.Target]*entry{}, spent: map[int]uint64{}}
}

// confirm records that t answered in cycle k after at probes, with rows.
// It reports whether t was held before.
func (inv *inventory) confirm(t gps.Target, rows []row.Service, k int, at float64) bool {
	e, ok := inv.held[t]
	if !ok {
		e = &entry{}
		inv.held[t] = e
	}
	e.rows, e.cycle, e.at, e.fails = rows, k, at, 0
	return ok
}

// fail records that a held t did not answer; it is gone (dropped) after
// goneAfter failures in a row, and fail reports whether it was.
func (inv *inventory) fail(t gps.Target, goneAfter int) bool {
	e, ok := inv.held[t]
	if !ok {
		return false
	}
	e.fails++
	if e.fails >= goneAfter {
		delete(inv.held, t)
		return true
	}
	return false
}

// CycleRow is one policy's state at the end of one cycle.
type CycleRow struct {
	Cycle  int    `json:"cycle"`
	Policy string `json:"policy"`
	// CoverageReal and Coverage are the shares of the cycle's real (and
	// all) services the inventory holds: fresh coverage.
	CoverageReal float64 `json:"coverage_real"`
	Coverage     float64 `json:"coverage"`
	// Stale is the share of held entries that the cycle's truth does not
	// have (gone, or moved away).
	Stale float64 `json:"stale"`
	Held  int     `json:"held"`
	// Probes are the cycle's, seed included; ProbesTotal adds up the
	// cycles so far.
	Probes      uint64 `json:"probes"`
	ProbesTotal uint64 `json:"probes_total"`
	SeedProbes  uint64 `json:"seed_probes"`
	// MeanAge is the mean time since each held entry last answered, in
	// cycles, at the end of the cycle.
	MeanAge float64 `json:"mean_age"`
}

// measure closes cycle k, in which the policy sent probes, and measures
// the inventory against w, the world at cycle k.
func (inv *inventory) measure(w *World, k int, policy string, probes, seedProbes, before uint64) CycleRow {
	inv.spent[k] = probes
	r := CycleRow{Cycle: k, Policy: policy, Held: len(inv.held), Probes: probes, SeedProbes: seedProbes, ProbesTotal: before + probes}
	fresh, real, age := 0, 0, 0.0
	for t, e := range inv.held {
		if _, ok := w.byTarget[t]; ok {
			fresh++
			if w.IsReal(t) {
				real++
			}
		}
		at := 0.0
		if p := inv.spent[e.cycle]; p > 0 {
			at = e.at / float64(p)
		}
		age += float64(k+1) - (float64(e.cycle) + at)
	}
	r.Coverage = float64(fresh) / float64(max(w.Services(), 1))
	r.CoverageReal = float64(real) / float64(max(w.RealServices(), 1))
	if len(inv.held) > 0 {
		r.Stale = float64(len(inv.held)-fresh) / float64(len(inv.held))
		r.MeanAge = age / float64(len(inv.held))
	}
	return r
}

// rowsOf are t's rows in w's truth.
func rowsOf(w *World, t gps.Target) []row.Service {
	idx := w.byTarget[t]
	rs := make([]row.Service, len(idx))
	for i, j := range idx {
		rs[i] = w.Truth[j]
	}
	return rs
}
