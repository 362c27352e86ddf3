package all_test

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/explore"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/telemetry"
	"github.com/gpsscan/gps/pkg/wire"
	"github.com/gpsscan/gps/services/all"
	"github.com/gpsscan/gps/services/modeler"
	"github.com/gpsscan/gps/services/predictor"
	"github.com/gpsscan/gps/services/prober"
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

// scraper reads a sum of samples from /metrics every few milliseconds.
type scraper struct {
	mu     sync.Mutex
	values []float64
}

// run scrapes url until ctx ends, summing the samples of metric whose labels
// contain match.
func (s *scraper) run(ctx context.Context, url, metric, match string) {
	c := http.Client{Timeout: 2 * time.Second}
	for ctx.Err() == nil {
		if resp, err := c.Get(url); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			sum := 0.0
			for line := range strings.SplitSeq(string(body), "\n") {
				if strings.HasPrefix(line, metric+"{") && strings.Contains(line, match) {
					if v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
						sum += v
					}
				}
			}
			s.mu.Lock()
			s.values = append(s.values, sum)
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestAllMatchesEval: `gps all` on a small world ends with a coverage within
// one point of what `gps eval` reports for gps-stream on the same world; its
// metrics count what its services did, /metrics shows them growing during
// the run, and the registry passes the Prometheus lint.
func TestAllMatchesEval(t *testing.T) {
	dir := world(t, lab.Config{Seed: 7, Hosts: 3000, Slash16s: 4, SeedFrac: 0.2})
	b := bustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	reg := telemetry.NewRegistry()
	m := telemetry.NewMetrics(reg)
	srv := telemetry.New(":0", reg, zap.NewNop())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stopServer := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := srv.Serve(sctx, ln); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var sc scraper
	go func() {
		defer wg.Done()
		sc.run(sctx, "http://"+ln.Addr().String()+"/metrics", telemetry.NameResultsIn, `service="modeler"`)
	}()
	var ready atomic.Bool
	sum, st, err := all.Run(ctx, all.Deps{Config: all.Config{World: dir, Quiet: time.Second, Modeler: modeler.Config{Hitrate: 1e-5, Step: 16}, Predictor: predictor.Config{Hitrate: 1e-5}}, Bus: b, Log: zap.NewNop(),
		Metrics: m, Ready: func() { ready.Store(true); srv.SetReady(true) }})
	stopServer()
	wg.Wait()
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
	// The inventory holds every service of RESULTS, live (nothing is gone
	// without refresh cycles).
	services := map[string]bool{}
	for _, msg := range servicetest.Stored(t, b, bus.StreamResults) {
		rs, err := wire.DecodeResults(msg.Data)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			services[wire.InventoryKey(r.IP, r.Port)] = true
		}
	}
	if n, live := st.Inventory.Services.Load(), st.Inventory.Live.Load(); n != int64(len(services)) || live != n {
		t.Errorf("inventory: %d services, %d live; RESULTS has %d", n, live, len(services))
	}
	if !ready.Load() {
		t.Error("Ready never called")
	}

	t.Run("metrics count what the services did", func(t *testing.T) {
		phases := func(c *prometheus.CounterVec, labels ...string) float64 {
			total := 0.0
			for _, p := range telemetry.Phases() {
				total += testutil.ToFloat64(c.WithLabelValues(append(labels, p)...))
			}
			return total
		}
		for _, c := range []struct {
			name      string
			got, want float64
		}{
			{"modeler results in", phases(m.ResultsIn, "modeler"), float64(st.Modeler.Results.Load())},
			{"predictor results in", phases(m.ResultsIn, "predictor"), float64(st.Predictor.Results.Load())},
			{"predictions out", phases(m.PredictionsOut), float64(st.Predictor.Predictions.Load())},
			{"probes sent", phases(m.ProbesSent), float64(st.Prober.Probes.Load())},
			{"seed probes", testutil.ToFloat64(m.ProbesSent.WithLabelValues("seed")), 0},
			{"modeler dead letters", testutil.ToFloat64(m.DeadLettered.WithLabelValues("modeler")), 0},
			{"prober dead letters", testutil.ToFloat64(m.DeadLettered.WithLabelValues("prober")), 0},
		} {
			if c.got != c.want {
				t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
			}
			if c.want == 0 && !strings.HasSuffix(c.name, "letters") && c.name != "seed probes" {
				t.Errorf("%s: nothing counted", c.name)
			}
		}
		if testutil.ToFloat64(m.ResultsIn.WithLabelValues("modeler", "predicted")) == 0 {
			t.Error("no predicted results counted by the modeler")
		}
		for _, g := range []prometheus.Gauge{m.ModelKeys, m.ModelHosts, m.ModelBytes} {
			if testutil.ToFloat64(g) <= 0 {
				t.Errorf("model gauge %v not set", g.Desc())
			}
		}
		counts := histogramCounts(t, reg)
		for _, k := range []string{telemetry.NamePredictionLatency, telemetry.NameMessageHandle + "/modeler",
			telemetry.NameMessageHandle + "/predictor", telemetry.NameMessageHandle + "/prober"} {
			if counts[k] == 0 {
				t.Errorf("%s: no observations", k)
			}
		}
		if n := testutil.CollectAndCount(m.ConsumerPending); n != 5 {
			t.Errorf("%d consumer lag series, want 5 (modeler, predictor and inventory on RESULTS, prober on TARGETS and PREDICTIONS)", n)
		}
		for _, s := range [][2]string{{"modeler", bus.StreamResults}, {"predictor", bus.StreamResults}, {"inventory", bus.StreamResults}, {"prober", bus.StreamTargets}, {"prober", bus.StreamPredictions}} {
			if v := testutil.ToFloat64(m.ConsumerPending.WithLabelValues(s[0], s[1])); v < 0 {
				t.Errorf("lag of %s on %s: %v", s[0], s[1], v)
			}
		}
	})
	t.Run("metrics grow on /metrics during the run", func(t *testing.T) {
		sc.mu.Lock()
		vs := sc.values
		sc.mu.Unlock()
		rises := 0
		for i := 1; i < len(vs); i++ {
			if vs[i] < vs[i-1] {
				t.Fatalf("scrape %d: %v after %v: a counter went down", i, vs[i], vs[i-1])
			}
			if vs[i] > vs[i-1] {
				rises++
			}
		}
		if rises < 2 || vs[len(vs)-1] != float64(st.Modeler.Results.Load()) {
			t.Errorf("%d scrapes, the modeler's results rose %d times to %v (of %d)", len(vs), rises, vs[len(vs)-1], st.Modeler.Results.Load())
		}
	})
	t.Run("lint", func(t *testing.T) {
		problems, err := testutil.GatherAndLint(reg)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	})
}

// histogramCounts is the number of observations of each gps_* histogram,
// keyed by name, and name/service for those with a service label.
func histogramCounts(t *testing.T, g prometheus.Gatherer) map[string]uint64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			h := mt.GetHistogram()
			if h == nil {
				continue
			}
			key := mf.GetName()
			for _, l := range mt.GetLabel() {
				if l.GetName() == telemetry.LabelService {
					key += "/" + l.GetValue()
				}
			}
			out[key] += h.GetSampleCount()
		}
	}
	return out
}

// TestLiveMatchesSimulated: `gps all --live` on a lab world served as real
// listeners on 127/8 draws the curve of the simulated run of the same world:
// within three points at every probe count, ending within two, having sent
// about the same probes.
func TestLiveMatchesSimulated(t *testing.T) {
	if testing.Short() {
		t.Skip("a live scan of a served lab world (about 2 minutes)")
	}
	// The live run waits on the lockstep after each hit (most of its 2
	// minutes, with idle CPUs): in parallel with the CPU-bound curve test.
	t.Parallel()
	liveMatchesSimulated(t, lab.Config{Seed: 7, Hosts: 2000, Slash16s: 1, SeedFrac: 0.05}, prober.Config{})
}

// TestLiveOwnSeedMatchesSimulated: the same with the prober's own seed,
// whose seeds go live one probe a port through the engine and its gate
// (no host seeds, and a few random ones: each is 65,535 probes).
func TestLiveOwnSeedMatchesSimulated(t *testing.T) {
	if testing.Short() {
		t.Skip("a live scan of a served lab world with seeds of every port (about 15 s)")
	}
	t.Parallel()
	lc := lab.Config{Seed: 7, Hosts: 2000, Slash16s: 1, SeedFrac: 0.05}
	w, err := eval.LoadWorld(world(t, lc))
	if err != nil {
		t.Fatal(err)
	}
	// The random seed goes as far as its first address that answers on a
	// real-looking host, whose ports are then swept.
	o := explore.Default(1.0 / 65536)
	o.HostShare = 0
	sp, ports := w.Space(), map[uint32]int{}
	for _, s := range w.Truth {
		ports[s.Addr]++
	}
	hosts := map[uint32]bool{}
	for a, n := range ports {
		hosts[a] = n <= explore.PseudoPorts
	}
	best := 200
	for key := range uint64(64) {
		order, n := explore.NewCyclic(sp.Size(), key), 1
		for ; n < best && !hosts[sp.Addr(order.Next())]; n++ {
		}
		if n < best {
			o.Key, best = key, n
		}
	}
	o.SeedMax = float64(best) / float64(sp.Size())
	t.Logf("%d random seeds (key %d)", best, o.Key)
	liveMatchesSimulated(t, lc, prober.Config{Own: o})
}

func liveMatchesSimulated(t *testing.T, lc lab.Config, pc prober.Config) {
	dir := world(t, lc)
	w, err := eval.LoadWorld(dir)
	if err != nil {
		t.Fatal(err)
	}
	labtest.Lock(t) // its sweeps must not find another package's lab
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := func(live bool) (*eval.RunSummary, *eval.Curve) {
		t.Helper()
		b := bustest.New(t)
		pc := pc
		pc.AwaitPredictions, pc.LiveConfig = 5*time.Second, prober.LiveConfig{Live: live}
		sum, st, err := all.Run(ctx, all.Deps{Config: all.Config{World: dir, Quiet: time.Second, Modeler: modeler.Config{Hitrate: 1e-5, Step: 24}, Predictor: predictor.Config{Hitrate: 1e-5}, Prober: pc},
			Bus: b, Log: zap.NewNop()})
		if err != nil {
			t.Fatalf("live=%v: %v", live, err)
		}
		t.Logf("live=%v: %s; prober found %d", live, sum.JSON(), st.Prober.Found.Load())
		if sum.ServicesFound == 0 || sum.Predictions == 0 && pc.Own.OwnSeed == 0 {
			t.Fatalf("live=%v: a degenerate run: %+v", live, sum)
		}
		c, _, err := eval.PipelineCurve(ctx, b, w, st.Prober.Probes.Load(), 0)
		if err != nil {
			t.Fatal(err)
		}
		return sum, c
	}
	sim, simCurve := run(false)
	live, liveCurve := run(true)
	if d := math.Abs(live.Coverage - sim.Coverage); d > 0.02 {
		t.Errorf("live coverage %.4f, simulated %.4f: %.1f points apart, want at most 2", live.Coverage, sim.Coverage, 100*d)
	}
	if r := float64(live.Probes) / float64(sim.Probes); r < 0.9 || r > 1.1 {
		t.Errorf("live run sent %d probes, simulated %d", live.Probes, sim.Probes)
	}
	worst, at := gap(liveCurve, simCurve, w)
	t.Logf("live curve within %.4f of the simulated one (worst at %d probes)", worst, at)
	if worst > 0.03 {
		t.Errorf("the live curve is %.1f points from the simulated one at %d probes, want at most 3", 100*worst, at)
	}
}
