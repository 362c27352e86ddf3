// Package gps is the GPS algorithm on top of pkg/model: the priors plan of
// Phase 1 (Plan), the rules and predictions of Phase 2 (RulesOf, Remaining),
// and streaming GPS's extra sweeps (Unexplained), over Targets. The batch
// commands that run it on files are pkg/batch; the services run it on
// streams.
package gps

import (
	"cmp"
	"slices"

	"github.com/gpsscan/gps/pkg/features"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/row"
)

// Defaults of the GPS parameters.
const (
	DefaultHitrate = 1e-5
	DefaultStep    = 16
)

// PlanRow is one group of the priors plan: scan Port across Prefix/Step.
type PlanRow struct {
	Port   uint16
	Prefix uint32
	Step   int
	Count  int
}

// Cost is the number of probes the group takes.
func (p PlanRow) Cost() uint64 { return 1 << (32 - p.Step) }

// Mask returns addr masked to /step.
func Mask(addr uint32, step int) uint32 {
	if step == 0 {
		return 0
	}
	return addr &^ (1<<(32-step) - 1)
}

// Plan groups the model rows by (p_b, the ip's /step prefix) and keeps the
// groups with count / 2^(32-step) > hitrate, count descending (then port,
// then prefix, so the order is deterministic).
func Plan(rows []model.ModelRow, step int, hitrate float64) []PlanRow {
	counts := make(map[Target]int)
	for _, r := range rows {
		counts[Target{Mask(r.Addr, step), r.NeededP}]++
	}
	return keptGroups(counts, step, hitrate)
}

// keptGroups turns (prefix, port) counts into plan rows, keeping the groups
// with count / 2^(32-step) > hitrate, count descending (then port, then
// prefix, so the order is deterministic).
func keptGroups(counts map[Target]int, step int, hitrate float64) []PlanRow {
	size := float64(uint64(1) << (32 - step))
	var plan []PlanRow
	for g, c := range counts {
		if float64(c)/size > hitrate {
			plan = append(plan, PlanRow{Port: g.Port, Prefix: g.Addr, Step: step, Count: c})
		}
	}
	slices.SortFunc(plan, func(a, b PlanRow) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Prefix, b.Prefix))
	})
	return plan
}

// Target is one probe: an address and a port.
type Target struct {
	Addr uint32
	Port uint16
}

// Rules is the Phase 2 rule set: the distinct (p_b, f) -> p_a of a model table.
type Rules map[model.Key][]uint16

// RulesOf collects the rules of the model rows.
func RulesOf(rows []model.ModelRow) Rules {
	r := make(Rules)
	for _, x := range rows {
		if x.Single {
			continue
		}
		k := model.Key{Port: x.NeededP, Feat: x.Feat}
		if !slices.Contains(r[k], x.P) {
			r[k] = append(r[k], x.P)
		}
	}
	return r
}

// Remaining is GPS Phase 2: every (ip, p_a) a rule predicts from a priors
// service, except those whose (ip/step, p_a) is a plan group and those that
// are seed services. dict must be the one the rules' features come from.
// The result is distinct and sorted.
func Remaining(dict *features.Dict, rules Rules, plan []PlanRow, priors []row.Service, seed map[Target]bool, step int) []Target {
	planned := PlannedSet(plan)
	out := make(map[Target]bool)
	var feats []features.ID
	for i := range priors {
		s := &priors[i]
		feats = dict.Of(feats[:0], s, false)
		for _, f := range feats {
			for _, pa := range rules[model.Key{Port: uint16(s.Port), Feat: f}] {
				t := Target{s.Addr, pa}
				if planned[Target{Mask(s.Addr, step), pa}] || seed[t] {
					continue
				}
				out[t] = true
			}
		}
	}
	return SortedTargets(out)
}

// PlannedSet indexes a plan by (prefix, port).
func PlannedSet(plan []PlanRow) map[Target]bool {
	s := make(map[Target]bool, len(plan))
	for _, p := range plan {
		s[Target{p.Prefix, p.Port}] = true
	}
	return s
}

// SortedTargets returns the keys of a set of targets, sorted by address, port.
func SortedTargets(set map[Target]bool) []Target {
	out := make([]Target, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	slices.SortFunc(out, CompareTargets)
	return out
}

// CompareTargets orders targets by address, then port.
func CompareTargets(a, b Target) int {
	return cmp.Or(cmp.Compare(a.Addr, b.Addr), cmp.Compare(a.Port, b.Port))
}

// Unexplained is the extra priors stage of streaming GPS: sweeps for the seed
// services the model cannot predict. Every seed service with no model row
// (no rule from its host's other ports reached it, or its host has more than
// model.MaxPorts ports) counts towards the group of its (prefix/step, port);
// groups already in the plan are left out, the rest are kept as the plan's
// are (count / 2^(32-step) > hitrate), count descending.
func Unexplained(rows []model.ModelRow, plan []PlanRow, seed []Target, step int, hitrate float64) []PlanRow {
	explained := make(map[Target]bool, len(rows))
	for _, r := range rows {
		port := r.P
		if r.Single {
			port = r.NeededP
		}
		explained[Target{r.Addr, port}] = true
	}
	planned := PlannedSet(plan)
	counts := map[Target]int{}
	for _, t := range seed {
		g := Target{Mask(t.Addr, step), t.Port}
		if !explained[t] && !planned[g] {
			counts[g]++
		}
	}
	return keptGroups(counts, step, hitrate)
}
