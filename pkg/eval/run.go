package eval

import (
	"context"
	"encoding/json"
	"fmt"

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
