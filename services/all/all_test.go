package all_test

import (
	"context"
	"math"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/services/all"
)

func world(t *testing.T, c lab.Config) string {
	t.Helper()
	dir := t.TempDir()
	w, err := lab.Generate(c.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestAllMatchesEval: `gps all` on a small world ends with a coverage within
// one point of what `gps eval` reports for gps-stream on the same world.
func TestAllMatchesEval(t *testing.T) {
	dir := world(t, lab.Config{Seed: 7, Hosts: 3000, Slash16s: 4, SeedFrac: 0.2})
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sum, st, err := all.Run(ctx, all.Deps{Config: all.Config{World: dir, Hitrate: 1e-5, Step: 16, Quiet: time.Second}, Bus: b, Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	w, err := eval.LoadWorld(dir)
	if err != nil {
		t.Fatal(err)
	}
	curve, _ := eval.Stream(w, eval.Params{Hitrate: 1e-5, Step: 16}, nil)
	want := float64(curve.End().Found) / float64(w.Services())
	t.Logf("gps all: %s; eval gps-stream coverage %.4f (%d probes)", sum.JSON(), want, curve.End().Probes)
	if math.Abs(sum.Coverage-want) > 0.01 {
		t.Fatalf("coverage %.4f, eval's gps-stream %.4f: more than one point apart", sum.Coverage, want)
	}
	if sum.Predictions == 0 || sum.Probes == 0 || st.Prober.Found.Load() == 0 {
		t.Fatalf("a degenerate run: %+v", sum)
	}
}
