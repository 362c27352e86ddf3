package all_test

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/explore"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/services/all"
	"github.com/gpsscan/gps/services/modeler"
	"github.com/gpsscan/gps/services/predictor"
	"github.com/gpsscan/gps/services/prober"
)

// curveWorlds are more world directories to compare, comma-separated:
// go test ./services/all -run PipelineCurve -args -curve-worlds DIR,DIR
var curveWorlds = flag.String("curve-worlds", "", "more world directories for TestPipelineCurveMatchesReplay, comma-separated")

// realWorlds is where the real worlds are, beside a clone of the repository.
const realWorlds = "../../../shared/real"

// maxGap is how far the pipeline's coverage may be from the replay's
// gps-stream at any probe count (issue #19).
const maxGap = 0.02

// runCurve runs gps all on the world dir to the end and returns the
// pipeline's curve (from RESULTS), the world and what --out wrote.
func runCurve(t *testing.T, dir string, pc prober.Config) (*eval.Curve, *eval.World, *eval.Summary) {
	t.Helper()
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out := t.TempDir()
	start := time.Now()
	log := zap.NewNop()
	sum, st, err := all.Run(ctx, all.Deps{Config: all.Config{World: dir, Out: out, Quiet: time.Second, Prober: pc,
		Modeler: modeler.Config{Hitrate: 1e-5, Step: 16}, Predictor: predictor.Config{Hitrate: 1e-5}}, Bus: b, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	w, err := eval.LoadWorld(dir)
	if err != nil {
		t.Fatal(err)
	}
	pipe, outside, err := eval.PipelineCurve(ctx, b, w, st.Prober.Probes.Load(), pc.Budget)
	if err != nil {
		t.Fatal(err)
	}
	if outside != 0 {
		t.Errorf("%d results outside the world", outside)
	}
	var s eval.Summary
	data, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: gps all took %v: %s", filepath.Base(dir), time.Since(start).Round(time.Second), sum.JSON())
	return pipe, w, &s
}

// gap is the largest difference of coverage (all services, and real ones)
// between two curves at every probe count either has, up to the shorter's
// end, and where it is.
func gap(a, b *eval.Curve, w *eval.World) (worst float64, at uint64) {
	end := min(a.End().Probes, b.End().Probes)
	var xs []uint64
	for _, c := range []*eval.Curve{a, b} {
		for _, p := range c.Points {
			if p.Probes <= end {
				xs = append(xs, p.Probes)
			}
		}
	}
	slices.Sort(xs)
	for _, x := range slices.Compact(xs) {
		d := math.Abs(a.FoundAt(x)-b.FoundAt(x)) / float64(w.Services())
		dr := math.Abs(a.RealAt(x)-b.RealAt(x)) / float64(max(w.RealServices(), 1))
		if m := max(d, dr); m > worst {
			worst, at = m, x
		}
	}
	return worst, at
}

// checkCurve compares the pipeline's curve with the replay's: within maxGap
// of gps-stream at every probe count, at least gps-batch's coverage at
// gps-batch's probes, and the summary's pipeline line is that curve.
func checkCurve(t *testing.T, pipe *eval.Curve, w *eval.World, s *eval.Summary) {
	t.Helper()
	p := eval.Params{Hitrate: 1e-5, Step: 16}
	stream, _ := eval.Stream(w, p, nil)
	batch := eval.Batch(w, p).Curve
	worst, at := gap(pipe, stream, w)
	bp := batch.End().Probes
	t.Logf("max gap to gps-stream %.4f at %d probes; at gps-batch's %d probes: pipeline %.4f (real %.4f), gps-batch %.4f (real %.4f), gps-stream %.4f; pipeline end %d probes %.4f, gps-stream end %d probes %.4f",
		worst, at, bp, pipe.FoundAt(bp)/float64(w.Services()), pipe.RealAt(bp)/float64(max(w.RealServices(), 1)),
		float64(batch.End().Found)/float64(w.Services()), float64(batch.End().Real)/float64(max(w.RealServices(), 1)),
		stream.FoundAt(bp)/float64(w.Services()), pipe.End().Probes, float64(pipe.End().Found)/float64(w.Services()),
		stream.End().Probes, float64(stream.End().Found)/float64(w.Services()))
	if worst > maxGap {
		t.Errorf("the pipeline's coverage is %.4f from gps-stream's at %d probes: more than %.2f", worst, at, maxGap)
	}
	// On a world where gps-stream itself is below gps-batch at gps-batch's
	// probes (msc-random: one host per /16, nothing to learn), the pipeline
	// is held to gps-stream's coverage there instead.
	floor := min(float64(batch.End().Found), stream.FoundAt(bp)-maxGap*float64(w.Services()))
	if pipe.FoundAt(bp) < floor {
		t.Errorf("at gps-batch's %d probes the pipeline found %.0f services, gps-batch %d, gps-stream %.0f", bp, pipe.FoundAt(bp), batch.End().Found, stream.FoundAt(bp))
	}
	r, ok := s.Policies["pipeline"]
	if !ok || r.Probes != pipe.End().Probes || r.Found != pipe.End().Found || r.ProbesTotal != pipe.End().Probes+w.SeedCost() || r.BandwidthX <= 0 {
		t.Errorf("summary.json's pipeline line %+v, want the curve's end %+v with the seed's cost", r, pipe.End())
	}
	if _, ok := s.Policies["gps-stream"]; !ok {
		t.Error("summary.json has no replay of gps-stream beside the pipeline")
	}
}

// TestPipelineCurveMatchesReplay: `gps all --world --out` measures its own
// curve from RESULTS, and it is the replay's gps-stream curve within two
// points at every probe count, on a lab world and on the real worlds.
func TestPipelineCurveMatchesReplay(t *testing.T) {
	t.Run("lab", func(t *testing.T) {
		dir := world(t, lab.Config{Seed: 7, Hosts: 3000, Slash16s: 4, SeedFrac: 0.2})
		pipe, w, s := runCurve(t, dir, prober.Config{})
		checkCurve(t, pipe, w, s)
	})
	for _, name := range []string{"msc-random", "yyrnet", "ipscan-norway"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(realWorlds, name, "world")
			if _, err := os.Stat(filepath.Join(dir, lab.TruthFile)); err != nil {
				t.Skipf("no real world %s beside the repository (%v)", dir, err)
			}
			if testing.Short() && name == "ipscan-norway" {
				t.Skip("ipscan-norway is large: skipped under -short")
			}
			pipe, w, s := runCurve(t, dir, prober.Config{})
			checkCurve(t, pipe, w, s)
		})
	}
	for dir := range strings.SplitSeq(*curveWorlds, ",") {
		if dir == "" {
			continue
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			pipe, w, s := runCurve(t, dir, prober.Config{})
			checkCurve(t, pipe, w, s)
		})
	}
}

// ownGap is gap for a pipeline whose works are seeds of 65,535 probes:
// its curve, read from RESULTS, has a point only where a work found
// something, so between two points it knows the coverage only to lie
// between theirs (an empty seed and then one of a pseudo-host with 275
// services are one straight segment, while the replay steps). At every
// probe count of either curve the replay's coverage is held to that
// interval.
func ownGap(pipe, replay *eval.Curve, w *eval.World) (worst float64, at uint64) {
	end := min(pipe.End().Probes, replay.End().Probes)
	var xs []uint64
	for _, c := range []*eval.Curve{pipe, replay} {
		for _, p := range c.Points {
			if p.Probes <= end {
				xs = append(xs, p.Probes)
			}
		}
	}
	slices.Sort(xs)
	outside := func(v, lo, hi float64) float64 { return max(0, v-hi, lo-v) }
	for _, x := range slices.Compact(xs) {
		i, exact := slices.BinarySearchFunc(pipe.Points, x, func(p eval.Point, x uint64) int { return cmp.Compare(p.Probes, x) })
		lo, hi := pipe.Points[max(i-1, 0)], pipe.Points[min(i, len(pipe.Points)-1)]
		if exact {
			lo = hi
		}
		d := outside(replay.FoundAt(x), float64(lo.Found), float64(hi.Found)) / float64(w.Services())
		dr := outside(replay.RealAt(x), float64(lo.Real), float64(hi.Real)) / float64(max(w.RealServices(), 1))
		if m := max(d, dr); m > worst {
			worst, at = m, x
		}
	}
	return worst, at
}

// checkOwnCurve compares the pipeline's curve, the prober taking its own
// seed, with the replay's gps-stream-own: within maxGap at every probe
// count, and the summary's pipeline line is that curve with no fixed seed
// added.
func checkOwnCurve(t *testing.T, pipe *eval.Curve, w *eval.World, s *eval.Summary, o explore.Config) {
	t.Helper()
	p := eval.Params{Hitrate: 1e-5, Step: 16, OwnSeed: o.OwnSeed, OwnSeedKey: o.Key, RandShare: o.RandShare, SeedMax: o.SeedMax,
		HostShare: o.HostShare, HostWindow: o.HostWindow, PortMin: o.PortMin, ProbeFound: o.ProbeFound, HostOrder: o.HostOrder, MultiPredict: true}
	replay, st := eval.Explore(w, p)
	worst, at := ownGap(pipe, replay, w)
	if g, a := gap(pipe, replay, w); g > worst {
		t.Logf("straight between the pipeline's points: max gap %.4f at %d probes", g, a)
	}
	re, pe := replay.End(), pipe.End()
	t.Logf("max gap to gps-stream-own %.4f at %d probes; pipeline end %d probes %.4f (real %.4f), replay end %d probes %.4f (real %.4f); replay: %d random seeds, %d host seeds, %d learned ports",
		worst, at, pe.Probes, float64(pe.Found)/float64(w.Services()), float64(pe.Real)/float64(max(w.RealServices(), 1)),
		re.Probes, float64(re.Found)/float64(w.Services()), float64(re.Real)/float64(max(w.RealServices(), 1)),
		st.RandomSeeds, st.HostSeeds, st.LearnedPorts)
	if worst > maxGap {
		t.Errorf("the pipeline's coverage is %.4f from gps-stream-own's at %d probes: more than %.2f", worst, at, maxGap)
	}
	if d := math.Abs(float64(pe.Found-re.Found)) / float64(w.Services()); d > maxGap {
		t.Errorf("the pipeline ends with %d services, the replay with %d", pe.Found, re.Found)
	}
	r, ok := s.Policies["pipeline"]
	if !ok || r.Probes != pe.Probes || r.Found != pe.Found || r.ProbesTotal != pe.Probes || r.BandwidthX <= 0 {
		t.Errorf("summary.json's pipeline line %+v, want the curve's end %+v with no fixed seed", r, pe)
	}
	if own, ok := s.Policies["gps-stream-own"]; !ok || own.CoverageRealAtTargetX <= 0 {
		t.Errorf("summary.json has no replay of gps-stream-own beside the pipeline (%+v)", own)
	}
}

// TestPipelineOwnSeedCurveMatchesReplay: with --own-seed the prober takes
// its own seed and sweeps what it learns (no fixed seed imported, no
// plan), and the pipeline's curve is the replay's gps-stream-own curve
// within two points at every probe count, on a lab world and the real
// worlds.
func TestPipelineOwnSeedCurveMatchesReplay(t *testing.T) {
	t.Parallel() // beside the live tests, which mostly wait
	o := explore.Default(explore.DefaultOwnSeed)
	t.Run("lab", func(t *testing.T) {
		dir := world(t, lab.Config{Seed: 7, Hosts: 3000, Slash16s: 4, SeedFrac: 0.2})
		pipe, w, s := runCurve(t, dir, prober.Config{Own: o})
		checkOwnCurve(t, pipe, w, s, o)
	})
	for _, name := range []string{"msc-random", "yyrnet", "ipscan-norway"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(realWorlds, name, "world")
			if _, err := os.Stat(filepath.Join(dir, lab.TruthFile)); err != nil {
				t.Skipf("no real world %s beside the repository (%v)", dir, err)
			}
			if testing.Short() && name != "yyrnet" {
				t.Skipf("%s is large: skipped under -short", name)
			}
			pipe, w, s := runCurve(t, dir, prober.Config{Own: o})
			checkOwnCurve(t, pipe, w, s, o)
		})
	}
	for dir := range strings.SplitSeq(*curveWorlds, ",") {
		if dir == "" {
			continue
		}
		t.Run(filepath.Base(dir), func(t *testing.T) {
			pipe, w, s := runCurve(t, dir, prober.Config{Own: o})
			checkOwnCurve(t, pipe, w, s, o)
		})
	}
}
