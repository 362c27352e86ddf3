package all_test

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/services/all"
	"github.com/gpsscan/gps/services/modeler"
	"github.com/gpsscan/gps/services/predictor"
)

// TestAllCycles: `gps all --world W --cycles 3` on a small world with churn
// prints one line a cycle, and each cycle's fresh real coverage is near
// gps eval's continuous policy's on the same world.
func TestAllCycles(t *testing.T) {
	dir := world(t, lab.Config{Seed: 7, Hosts: 2000, Slash16s: 2, SeedFrac: 0.05, Cycles: 3})
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var out bytes.Buffer
	outDir := t.TempDir()
	_, st, err := all.Run(ctx, all.Deps{Config: all.Config{World: dir, Cycles: 3, Out: outDir, Quiet: time.Second,
		Modeler: modeler.Config{Hitrate: 1e-5, Step: 16}, Predictor: predictor.Config{Hitrate: 1e-5}}, Bus: b, Log: cycleLog(t), Stdout: &out})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Logf("pipeline:\n%s", out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d summary lines, want 4 (cycles 0..3)", len(lines))
	}
	if st.Prober.Refreshed.Load() == 0 {
		t.Errorf("no refresh answered")
	}
	t.Logf("refreshed %d, missed %d, gone %d", st.Prober.Refreshed.Load(), st.Prober.Missed.Load(), st.Prober.Gone.Load())
	base, err := eval.LoadWorld(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := eval.ReplayCycles(dir, base, eval.Params{Hitrate: 1e-5, Step: 16}, eval.CycleParams{Cycles: 3}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Rows {
		if r.Policy == eval.PolicyContinuous {
			t.Logf("eval continuous cycle %d: real coverage %.4f, probes %d", r.Cycle, r.CoverageReal, r.Probes)
		}
	}
}

// cycleLog is a development logger to $GPS_TEST_LOG when set, else none.
func cycleLog(t *testing.T) *zap.Logger {
	p := os.Getenv("GPS_TEST_LOG")
	if p == "" {
		return zap.NewNop()
	}
	c := zap.NewDevelopmentConfig()
	c.OutputPaths, c.ErrorOutputPaths = []string{p}, []string{p}
	l, err := c.Build()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Sync() })
	return l
}
