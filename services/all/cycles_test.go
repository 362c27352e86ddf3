package all_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
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
// gps eval's continuous policy's on the same world (within 1 point, as
// issue #17 asks; GPS_TEST_LOG=FILE writes the services' development log
// there).
func TestAllCycles(t *testing.T) {
	const cycles = 3 // cycles 0..3
	dir := world(t, lab.Config{Seed: 7, Hosts: 2000, Slash16s: 2, SeedFrac: 0.05, Cycles: cycles})
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out bytes.Buffer
	outDir := t.TempDir()
	_, st, err := all.Run(ctx, all.Deps{Config: all.Config{World: dir, Cycles: cycles, Out: outDir, Quiet: time.Second,
		Modeler: modeler.Config{Hitrate: 1e-5, Step: 16}, Predictor: predictor.Config{Hitrate: 1e-5}}, Bus: b, Log: cycleLog(t), Stdout: &out})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	t.Logf("pipeline:\n%s", out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != cycles+1 {
		t.Fatalf("%d summary lines, want %d (cycles 0..%d)", len(lines), cycles+1, cycles)
	}
	for k, l := range lines {
		if !strings.HasPrefix(l, fmt.Sprintf("cycle %d: ", k)) {
			t.Errorf("summary line %d: %q", k, l)
		}
	}
	if st.Prober.Refreshed.Load() == 0 {
		t.Errorf("no refresh answered")
	}
	t.Logf("refreshed %d, missed %d, gone %d", st.Prober.Refreshed.Load(), st.Prober.Missed.Load(), st.Prober.Gone.Load())
	pipe := readCyclesCSV(t, filepath.Join(outDir, "cycles.csv"))
	if len(pipe) != cycles+1 {
		t.Fatalf("cycles.csv: %d rows, want %d", len(pipe), cycles+1)
	}
	base, err := eval.LoadWorld(dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := eval.ReplayCycles(dir, base, eval.Params{Hitrate: 1e-5, Step: 16}, eval.CycleParams{Cycles: cycles}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	cont := map[int]float64{}
	for _, r := range res.Rows {
		if r.Policy == eval.PolicyContinuous {
			cont[r.Cycle] = r.CoverageReal
		}
	}
	// The pipeline predicts each host afresh each cycle and plans extra
	// sweeps for the cycle's own seed, as the replay does; what is left is
	// the order of the work within a cycle.
	const bound = 0.01
	for k, r := range pipe {
		e, ok := cont[k]
		if !ok {
			t.Fatalf("eval has no continuous row for cycle %d", k)
		}
		t.Logf("cycle %d: real fresh coverage pipeline %.4f, eval continuous %.4f (%+.2f points)", k, r, e, 100*(r-e))
		if math.Abs(r-e) > bound {
			t.Errorf("cycle %d: pipeline real coverage %.4f, %.1f points from eval continuous %.4f (bound %.0f)", k, r, 100*math.Abs(r-e), e, 100*bound)
		}
	}
}

// readCyclesCSV returns the real coverage of each row of a pipeline
// cycles.csv, checking that the rows are the pipeline's cycles in order.
func readCyclesCSV(t *testing.T, path string) []float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(recs) == 0 || recs[0][0] != "cycle" || recs[0][2] != "coverage_real" {
		t.Fatalf("%s: header %v", path, recs)
	}
	var cov []float64
	for i, rec := range recs[1:] {
		if rec[0] != strconv.Itoa(i) || rec[1] != "pipeline" {
			t.Fatalf("%s: row %d is %v", path, i, rec)
		}
		v, err := strconv.ParseFloat(rec[2], 64)
		if err != nil {
			t.Fatalf("%s: row %d: %v", path, i, err)
		}
		cov = append(cov, v)
	}
	return cov
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
