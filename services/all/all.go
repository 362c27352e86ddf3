// Package all runs the services in one process, as `gps all`: the
// seeder, modeler, predictor, prober and inventory, on one bus. With a world it runs
// the pipeline to the end (the seed imported, the plan swept, every
// prediction probed) and sums up what it found.
package all

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/explore"
	"github.com/gpsscan/gps/pkg/labserve"
	"github.com/gpsscan/gps/pkg/netprobe"
	"github.com/gpsscan/gps/pkg/telemetry"
	"github.com/gpsscan/gps/services/inventory"
	"github.com/gpsscan/gps/services/modeler"
	"github.com/gpsscan/gps/services/predictor"
	"github.com/gpsscan/gps/services/prober"
	"github.com/gpsscan/gps/services/seeder"
)

// Deps are what Run needs.
type Deps struct {
	Config Config
	Bus    *bus.Bus
	Log    *zap.Logger
	// Metrics, optional, are shared by the four services (one registry for
	// the process). The modeler and the predictor both set the model gauges:
	// in one process they hold the same model, up to their lag.
	Metrics *telemetry.Metrics
	Ready   func()    // optional: called once the modeler, predictor and prober consume
	Stdout  io.Writer // optional: the table of a run with Config.Out
}

// Stats holds the services' counters.
type Stats struct {
	Seeder    seeder.Stats
	Modeler   modeler.Stats
	Predictor predictor.Stats
	Prober    prober.Stats
	Inventory inventory.Stats
}

// Run runs every service until ctx ends or, with a world, until the pipeline
// is done; then it returns the summary (nil without a world).
func Run(ctx context.Context, d Deps) (*eval.RunSummary, *Stats, error) {
	c := d.Config.resolved()
	if err := d.Bus.Setup(ctx); err != nil {
		return nil, nil, err
	}
	st := &Stats{}
	svcCtx, stop := context.WithCancel(ctx)
	defer stop()
	g, gctx := errgroup.WithContext(svcCtx)
	if c.World != "" && c.Prober.Live {
		lab, err := labserve.Serve(ctx, c.World, labserve.Options{}, d.Log.With(zap.String("service", "lab")))
		if err != nil {
			return nil, nil, fmt.Errorf("run all: serve the lab: %w", err)
		}
		defer lab.Close()
	}
	// Ready once the four long-running services consume.
	var waiting atomic.Int32
	waiting.Store(4)
	ready := func() {
		if waiting.Add(-1) == 0 && d.Ready != nil {
			d.Ready()
		}
	}
	g.Go(func() error {
		return modeler.Run(gctx, modeler.Deps{Config: c.Modeler, Bus: d.Bus, Log: d.Log.With(zap.String("service", "modeler")), Stats: &st.Modeler,
			Metrics: d.Metrics, Ready: ready})
	})
	g.Go(func() error {
		return predictor.Run(gctx, predictor.Deps{Config: c.Predictor, Bus: d.Bus, Log: d.Log.With(zap.String("service", "predictor")), Stats: &st.Predictor,
			Metrics: d.Metrics, Ready: ready})
	})
	g.Go(func() error {
		return inventory.Run(gctx, inventory.Deps{Config: c.Inventory, Bus: d.Bus, Log: d.Log.With(zap.String("service", inventory.Service)), Stats: &st.Inventory,
			Metrics: d.Metrics, Ready: ready})
	})
	if c.ownSeed() && c.World != "" && len(c.Prober.OwnSpace) == 0 {
		// The own seed's space is the world's, as the replay's.
		w, err := eval.LoadWorld(c.World)
		if err != nil {
			return nil, nil, fmt.Errorf("run all: the own seed's space: %w", err)
		}
		c.Prober.OwnSpace = w.Space().Prefixes()
	}
	spent := make(chan struct{})
	g.Go(func() error {
		return prober.Run(gctx, prober.Deps{Config: c.Prober, Bus: d.Bus, Log: d.Log.With(zap.String("service", "prober")), Stats: &st.Prober,
			Metrics: d.Metrics, Ready: ready, OnBudget: func() { close(spent) }})
	})
	var cyc *cycler
	if c.World != "" && c.Cycles > 0 {
		base, err := eval.LoadWorld(c.World)
		if err != nil {
			return nil, nil, fmt.Errorf("run all cycles: %w", err)
		}
		cycleSeeder(&c, base)
		cyc = &cycler{d: d, c: c, st: st, base: base, inv: eval.NewPipelineInventory(c.World, base), next: make(chan struct{})}
	}
	if c.seeds() {
		g.Go(func() error {
			if cyc != nil {
				return seeder.Run(gctx, seeder.Deps{Config: c.Seeder, Bus: d.Bus, Log: d.Log.With(zap.String("service", "seeder")), Stats: &st.Seeder,
					Metrics: d.Metrics, NextCycle: func(ctx context.Context, _ bus.Cycle) error {
						select {
						case <-cyc.next:
							return nil
						case <-ctx.Done():
							return ctx.Err()
						}
					}})
			}
			return seeder.Run(gctx, seeder.Deps{Config: c.Seeder, Bus: d.Bus, Log: d.Log.With(zap.String("service", "seeder")), Stats: &st.Seeder,
				Metrics: d.Metrics})
		})
	}
	if c.World == "" {
		return nil, st, ignoreCanceled(g.Wait())
	}
	if cyc != nil {
		err := cyc.run(gctx)
		stop()
		if werr := ignoreCanceled(g.Wait()); err == nil {
			err = werr
		}
		return nil, st, ignoreCanceled(err)
	}
	// A world run: wait until the pipeline is idle (or the prober's budget
	// is spent), then stop the services.
	doneErr := make(chan error, 1)
	var ownDone func() bool // the prober's own seed has nothing left to do
	if c.ownSeed() {
		ownDone = st.Prober.OwnIdle.Load
	}
	go func() { doneErr <- d.Bus.WaitIdleWhen(gctx, c.Quiet, Consumers(), d.Log, ownDone) }()
	var idleErr error
	select {
	case idleErr = <-doneErr:
	case <-spent:
		d.Log.Info("probe budget spent: stopping", zap.Uint64("budget", c.Prober.Budget))
	case <-gctx.Done():
	}
	stop()
	if err := ignoreCanceled(g.Wait()); err != nil {
		return nil, st, err
	}
	if idleErr != nil && !errors.Is(idleErr, context.Canceled) {
		return nil, st, idleErr
	}
	if ctx.Err() != nil {
		return nil, st, ctx.Err()
	}
	sum, err := eval.SummarizeRun(ctx, d.Bus, c.World, st.Prober.Probes.Load())
	if err != nil || c.Out == "" {
		return sum, st, err
	}
	return sum, st, writeCurves(ctx, d, c, st.Prober.Probes.Load())
}

// writeCurves writes the run's summary.json, curves.csv and coverage.png:
// the replay's policies on the same world and parameters, and the
// pipeline's curve read from RESULTS.
func writeCurves(ctx context.Context, d Deps, c Config, probes uint64) error {
	w, err := eval.LoadWorld(c.World)
	if err != nil {
		return fmt.Errorf("write curves: %w", err)
	}
	ec := eval.Config{World: c.World, Out: c.Out, Params: eval.Params{Hitrate: c.Modeler.Hitrate, Step: c.Modeler.Step, Budget: c.Prober.Budget}}
	pipe, outside, err := eval.PipelineCurve(ctx, d.Bus, w, probes, c.Prober.Budget)
	if err != nil {
		return fmt.Errorf("write curves: %w", err)
	}
	if c.ownSeed() {
		// Beside the replay of the same policy; the pipeline's probes
		// count its own seed, not the world's.
		ec.Params = ownParams(ec.Params, c.Prober.Own)
		pipe.CountsOwnSeed()
	}
	curves, batchProbes := eval.Replay(w, ec.Params, d.Log)
	stdout := d.Stdout
	if stdout == nil {
		stdout = io.Discard
	}
	if _, err := eval.Write(ec, w, append(curves, pipe), batchProbes, stdout); err != nil {
		return fmt.Errorf("write curves: %w", err)
	}
	e := pipe.End()
	d.Log.Info("curves written", zap.String("out", c.Out), zap.Uint64("pipeline_probes", e.Probes), zap.Int("pipeline_found", e.Found),
		zap.Int("outside_world", outside))
	return nil
}

// ownParams are p with the replay's gps-stream-own run as the prober's
// own seed is (the replay's other knobs at gps eval's defaults, as the
// prober's scheduler and the predictor are).
func ownParams(p eval.Params, o explore.Config) eval.Params {
	p.OwnSeed, p.OwnSeedKey, p.RandShare, p.SeedMax = o.OwnSeed, o.Key, o.RandShare, o.SeedMax
	p.HostShare, p.HostWindow, p.PortMin, p.ProbeFound, p.MultiPredict = o.HostShare, o.HostWindow, o.PortMin, o.ProbeFound, true
	p.HostOrder = o.HostOrder
	return p
}

func ignoreCanceled(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// LabLive is the live engine of a run on the served lab. Loopback has no
// round trip and no loss, so the waits are short and the rates high: a
// service that waits for the client (HTTP, TLS) costs BannerWait, a silent
// one BannerWait+Timeout. The world's truth counts services that send
// nothing, so they are kept (LZR-style filtering would drop them) to
// compare with truth.
var LabLive = prober.LiveConfig{Live: true, Engine: netprobe.EngineConnect, Rate: 50000, ProbeConcurrency: 1024,
	Timeout: time.Second, BannerWait: 250 * time.Millisecond, Retries: 1, KeepEmpty: true}

// Consumers are the durable consumers each stream must have before its
// messages count as handled (bus.WaitIdle): the services' own.
func Consumers() map[string][]string {
	return map[string][]string{
		bus.StreamResults:     {modeler.Service, predictor.Service, inventory.Service},
		bus.StreamTargets:     {prober.Durable},
		bus.StreamPredictions: {prober.Durable},
	}
}
