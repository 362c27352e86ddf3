package eval

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// RunSummary is the last line of a world run of `gps all`.
type RunSummary struct {
	ServicesFound int     `json:"services_found"` // distinct services of the world in RESULTS
	Outside       int     `json:"outside_world"`  // distinct ip:port in RESULTS that the world does not have (injected, or a seed row not in truth)
	Probes        uint64  `json:"probes"`
	Coverage      float64 `json:"coverage"`
	Predictions   int     `json:"predictions"`
}

// SummarizeRun counts the distinct services of the world in RESULTS and
// the predictions in PREDICTIONS; probes come from the prober. A result the
// world does not have (a message injected on the bus, a seed row missing
// from truth) is counted apart, never as found.
func SummarizeRun(ctx context.Context, b *bus.Bus, world string, probes uint64) (*RunSummary, error) {
	found := map[gps.Target]bool{}
	if err := b.EachMessage(ctx, bus.StreamResults, func(data []byte) {
		rs, _ := wire.DecodeResults(data) // a message of one result or a batch; a bad one counts nothing
		for _, r := range rs {
			if a, err := row.ParseAddr(r.IP); err == nil {
				found[gps.Target{Addr: a, Port: uint16(r.Port)}] = true
			}
		}
	}); err != nil {
		return nil, err
	}
	preds := map[gps.Target]bool{}
	if err := b.EachMessage(ctx, bus.StreamPredictions, func(data []byte) {
		if p, err := wire.DecodePrediction(data); err == nil {
			if a, err := row.ParseAddr(p.IP); err == nil {
				preds[gps.Target{Addr: a, Port: uint16(p.Port)}] = true
			}
		}
	}); err != nil {
		return nil, err
	}
	truth := map[gps.Target]bool{}
	if err := row.ReadFile(lab.WorldFile(world, lab.TruthFile), func(s row.Service) error {
		truth[gps.Target{Addr: s.Addr, Port: uint16(s.Port)}] = true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("count truth: %w", err)
	}
	s := &RunSummary{Probes: probes, Predictions: len(preds)}
	for t := range found {
		if truth[t] {
			s.ServicesFound++
		} else {
			s.Outside++
		}
	}
	if len(truth) > 0 {
		s.Coverage = float64(s.ServicesFound) / float64(len(truth))
	}
	return s, nil
}

// JSON renders the summary as one line.
func (s *RunSummary) JSON() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// PipelineCurve is the running pipeline's curve, read from RESULTS: each
// service of the world counts at the smallest probe count (wire.Result's
// Probes, the prober's count when it was probed) of its results, and the
// seed's services (imported, with no count) at the start, as the replay
// counts them (the seed's cost is added to probes_total by the summary).
// Results the world does not have count apart (outside). A budget cuts the
// curve as it cuts a policy's; probes, the prober's count at the end, ends
// it (the probes after the last find found nothing).
func PipelineCurve(ctx context.Context, b *bus.Bus, w *World, probes, budget uint64) (c *Curve, outside int, err error) {
	at := map[gps.Target]uint64{}
	seed := map[gps.Target]bool{}
	other := map[gps.Target]bool{}
	if err := b.EachMessage(ctx, bus.StreamResults, func(data []byte) {
		rs, _ := wire.DecodeResults(data) // a bad message counts nothing
		for _, r := range rs {
			a, err := row.ParseAddr(r.IP)
			if err != nil {
				continue
			}
			t := gps.Target{Addr: a, Port: uint16(r.Port)}
			switch {
			case w.byTarget[t] == nil:
				other[t] = true
			case r.Source == "import":
				seed[t] = true
			default:
				if n, ok := at[t]; !ok || r.Probes < n {
					at[t] = r.Probes
				}
			}
		}
	}); err != nil {
		return nil, 0, fmt.Errorf("read the pipeline's curve: %w", err)
	}
	seedReal := 0
	for t := range seed {
		delete(at, t)
		if w.IsReal(t) {
			seedReal++
		}
	}
	found := make([]gps.Target, 0, len(at))
	for t := range at {
		found = append(found, t)
	}
	slices.SortFunc(found, func(x, y gps.Target) int {
		return cmp.Or(cmp.Compare(at[x], at[y]), cmp.Compare(x.Addr, y.Addr), cmp.Compare(x.Port, y.Port))
	})
	c = newCurve("pipeline", len(seed), seedReal, budget)
	var last uint64
	for i := 0; i < len(found); {
		n, r, stamp := 0, 0, at[found[i]]
		for ; i < len(found) && at[found[i]] == stamp; i++ {
			n++
			if w.IsReal(found[i]) {
				r++
			}
		}
		if !c.Spend(stamp-last, n, r) {
			return c, len(other), nil
		}
		last = stamp
	}
	if probes > last {
		c.Spend(probes-last, 0, 0)
	}
	return c, len(other), nil
}
