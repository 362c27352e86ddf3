// Package all runs the four services in one process, as `gps all`: the
// seeder, modeler, predictor and prober, on one bus. With a world it runs
// the pipeline to the end (the seed imported, the plan swept, every
// prediction probed) and sums up what it found.
package all

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/labserve"
	"github.com/gpsscan/gps/pkg/netprobe"
	"github.com/gpsscan/gps/pkg/telemetry"
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
	Ready   func() // optional: called once the modeler, predictor and prober consume
}

// Stats holds the services' counters.
type Stats struct {
	Seeder    seeder.Stats
	Modeler   modeler.Stats
	Predictor predictor.Stats
	Prober    prober.Stats
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
	// Ready once the three long-running services consume.
	var waiting atomic.Int32
	waiting.Store(3)
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
		return prober.Run(gctx, prober.Deps{Config: c.Prober, Bus: d.Bus, Log: d.Log.With(zap.String("service", "prober")), Stats: &st.Prober,
			Metrics: d.Metrics, Ready: ready})
	})
	if c.seeds() {
		g.Go(func() error {
			return seeder.Run(gctx, seeder.Deps{Config: c.Seeder, Bus: d.Bus, Log: d.Log.With(zap.String("service", "seeder")), Stats: &st.Seeder,
				Metrics: d.Metrics})
		})
	}
	if c.World == "" {
		return nil, st, ignoreCanceled(g.Wait())
	}
	// A world run: wait until the pipeline is idle, then stop the services.
	doneErr := make(chan error, 1)
	go func() { doneErr <- d.Bus.WaitIdle(gctx, c.Quiet, Consumers(), d.Log) }()
	var idleErr error
	select {
	case idleErr = <-doneErr:
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
	return sum, st, err
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
		bus.StreamResults:     {modeler.Service, predictor.Service},
		bus.StreamTargets:     {prober.Durable},
		bus.StreamPredictions: {prober.Durable},
	}
}
