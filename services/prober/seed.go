package prober

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/schedule"
)

// HostScanner is a Responder that answers a seed at once: fn is called
// with each service of addr on ports 1..last, in port order.
type HostScanner interface {
	Host(ctx context.Context, addr uint32, last uint16, fn func(row.Row)) error
}

// seed probes a Seed work, every port of one address up to w.Port, and
// returns the services found in port order: at once from a HostScanner,
// else one probe a port (live: each through the engine and its gate),
// ProbeConcurrency of them in flight.
func (p *prober) seed(ctx context.Context, w schedule.Work) ([]row.Row, error) {
	var found []row.Row
	if hs, ok := p.resp.(HostScanner); ok {
		if err := hs.Host(ctx, w.First, w.Port, func(r row.Row) { found = append(found, r) }); err != nil {
			return nil, fmt.Errorf("seed: %w", err)
		}
		return found, nil
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(p.c.ProbeConcurrency, 1))
	for t := range w.Targets() {
		g.Go(func() error {
			r, ok, err := p.resp.Probe(gctx, t.Addr, t.Port)
			if err != nil {
				return fmt.Errorf("seed: probe: %w", err)
			}
			if ok {
				mu.Lock()
				found = append(found, r)
				mu.Unlock()
			}
			return nil
		})
	}
	err := g.Wait()
	slices.SortFunc(found, func(a, b row.Row) int { return a.Port - b.Port })
	return found, err
}
