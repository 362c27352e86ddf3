package all_test

import (
	"context"
	"math"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/services/all"
	"github.com/gpsscan/gps/services/modeler"
	"github.com/gpsscan/gps/services/predictor"
	"github.com/gpsscan/gps/services/prober"
)

// TestTwoWorldProbers: two probers that answer from a world share the
// predictions consumer, each in lockstep with the predictor (as `gps
// prober --world` is by default). Neither waits out its lockstep for the
// predictions the other was given (5 s a hit: the Kubernetes e2e, with 2
// probers, crawled so), and together they find what one prober finds.
func TestTwoWorldProbers(t *testing.T) {
	dir := world(t, lab.Config{Seed: 7, Hosts: 1500, Slash16s: 2, SeedFrac: 0.2})
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	core, logs := observer.New(zapcore.DebugLevel)
	lockstep := prober.Config{World: dir, AwaitPredictions: prober.DefaultAwaitPredictions}

	pctx, stopSecond := context.WithCancel(ctx)
	defer stopSecond()
	var second prober.Stats
	done := make(chan error, 1)
	go func() {
		done <- prober.Run(pctx, prober.Deps{Config: lockstep, Bus: b, Log: zap.New(core).With(zap.String("service", "prober-2")), Stats: &second})
	}()
	started := time.Now()
	sum, st, err := all.Run(ctx, all.Deps{Config: all.Config{World: dir, Quiet: time.Second, Prober: lockstep,
		Modeler: modeler.Config{Hitrate: 1e-5, Step: 16}, Predictor: predictor.Config{Hitrate: 1e-5}}, Bus: b, Log: zap.New(core)})
	took := time.Since(started)
	stopSecond()
	if err := <-done; err != nil {
		t.Fatalf("second prober: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gps all with a second prober: %s in %v; the second prober found %d of %d", sum.JSON(), took.Round(time.Millisecond),
		second.Found.Load(), second.Found.Load()+st.Prober.Found.Load())
	if second.Found.Load() == 0 || st.Prober.Found.Load() == 0 {
		t.Fatalf("the probers found %d and %d: both must take work for this test", st.Prober.Found.Load(), second.Found.Load())
	}
	waited := 0
	for _, e := range logs.FilterMessage("predictions not awaited").All() {
		if e.ContextMap()["why"] == "predictions not pulled" {
			waited++
		}
	}
	if waited > 0 {
		t.Errorf("the probers waited out their lockstep %d times for predictions the other was given", waited)
	}
	w, err := eval.LoadWorld(dir)
	if err != nil {
		t.Fatal(err)
	}
	curve, _ := eval.Stream(w, eval.Params{Hitrate: 1e-5, Step: 16}, nil)
	want := float64(curve.End().Found) / float64(w.Services())
	if math.Abs(sum.Coverage-want) > 0.01 {
		t.Errorf("coverage %.4f with two probers, eval's gps-stream %.4f: more than one point apart", sum.Coverage, want)
	}
}
