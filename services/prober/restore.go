package prober

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// probed is one service a probe of an earlier run found, from RESULTS.
type probed struct {
	stamp uint64 // the prober's probe count after the work that found it: one work, one stamp
	seq   int    // order in the stream
	t     gps.Target
	seed  bool // found by a seed
}

// restore rebuilds the own seed's policy from RESULTS after a restart:
// every work of an earlier run that found services is learned again in
// the order it was probed (results by probe count), its seeds not pushed
// again, and the probe count goes on from the last. It reports whether
// there was an earlier run (else the policy starts afresh: Start).
func (o *own) restore(ctx context.Context, b *bus.Bus, sent interface{ Store(uint64) }, log *zap.Logger) (bool, error) {
	var past []probed
	err := b.EachMessage(ctx, bus.StreamResults, func(data []byte) {
		rs, _ := wire.DecodeResults(data) // a bad message teaches nothing
		for _, r := range rs {
			if r.Source != "probe" || r.Gone || r.Probes == 0 || r.Phase == wire.PhaseRefresh {
				continue
			}
			a, err := row.ParseAddr(r.IP)
			if err != nil {
				continue
			}
			past = append(past, probed{stamp: r.Probes, seq: len(past), t: gps.Target{Addr: a, Port: uint16(r.Port)}, seed: r.Phase == wire.PhaseSeed})
		}
	})
	if err != nil {
		return false, fmt.Errorf("own seed: read the earlier run's results: %w", err)
	}
	if len(past) == 0 {
		return false, nil
	}
	slices.SortFunc(past, func(x, y probed) int { return cmp.Or(cmp.Compare(x.stamp, y.stamp), cmp.Compare(x.seq, y.seq)) })
	var hits []gps.Target
	works := 0
	for i := 0; i < len(past); {
		j := i
		hits = hits[:0]
		for ; j < len(past) && past[j].stamp == past[i].stamp; j++ {
			hits = append(hits, past[j].t)
		}
		if past[i].seed {
			o.pol.RestoreSeed(past[i].t.Addr, hits)
		} else {
			o.pol.RestoreFinds(hits)
		}
		works++
		i = j
	}
	o.pol.Restored()
	last := past[len(past)-1].stamp
	sent.Store(last)
	s := o.pol.Stats()
	log.Info("own seed restored from RESULTS", zap.Int("results", len(past)), zap.Int("works", works), zap.Uint64("probes", last),
		zap.Int("random_seeds", s.RandomSeeds), zap.Int("host_seeds", s.HostSeeds), zap.Int("learned_ports", s.LearnedPorts))
	return true, nil
}
