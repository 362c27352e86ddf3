// Package eval replays a world offline and measures what a user of
// predictive scanning reads: services found against probes sent, for GPS in
// batch, this project's streaming GPS, and the baselines.
package eval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/atomicfile"
)

// Config configures `gps eval`.
type Config struct {
	World string
	Out   string
	Params
	// Cycle configures the replay over cycles of a world that has them.
	Cycle CycleParams
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.World == "" || c.Out == "" {
		return errors.New("need --world DIR and --out DIR")
	}
	if c.Step < 1 || c.Step > 32 {
		return fmt.Errorf("--step %d: want 1..32", c.Step)
	}
	if !(c.Hitrate >= 0 && c.Hitrate < 1) { // NaN fails every comparison
		return fmt.Errorf("--hitrate %g: want 0 <= hitrate < 1", c.Hitrate)
	}
	if c.Chunk&(c.Chunk-1) != 0 || c.Chunk > 1<<32 {
		return fmt.Errorf("--chunk %d: want a power of two up to 2^32", c.Chunk)
	}
	if c.PriorWeight < 0 {
		return fmt.Errorf("--prior-weight %g: want >= 0", c.PriorWeight)
	}
	// gps-stream-own's knobs, checked where the prober's are.
	if err := c.Policy().Validate(); err != nil {
		return err
	}
	if c.OwnSeed > 0 && c.Chunk > 1<<16 {
		return fmt.Errorf("--chunk %d: gps-stream-own sweeps /16s, want at most 65536", c.Chunk)
	}
	if !(c.Floor >= 0) {
		return fmt.Errorf("--floor %g: want >= 0", c.Floor)
	}
	return c.Cycle.Validate()
}

// PolicyResult is one policy's line of summary.json. Real coverage (services
// of hosts with at most PseudoPorts ports) is the headline, as in GPS, whose
// ground truth leaves pseudo-service hosts out; probes_total counts the seed,
// as GPS's bandwidth figures do.
type PolicyResult struct {
	CoverageReal              float64           `json:"coverage_real"`
	FoundReal                 int               `json:"found_real"`
	ProbesTotal               uint64            `json:"probes_total"`
	BandwidthX                float64           `json:"bandwidth_x"`
	CoverageRealAtBatchProbes float64           `json:"coverage_real_at_batch_probes"`
	ProbesToReal              map[string]*int64 `json:"probes_to_real"`
	Probes                    uint64            `json:"probes"`
	Found                     int               `json:"found"`
	Coverage                  float64           `json:"coverage"`
	Precision                 float64           `json:"precision"`
	CoverageAtBatchProbes     float64           `json:"coverage_at_batch_probes"`
	ProbesTo                  map[string]*int64 `json:"probes_to"`
	// The issue #16 targets: real coverage at TargetX less bandwidth than
	// exhaustive (seed included), the bandwidth_x at which TargetReal of
	// the real services are found (0: never), and the probes_total at
	// which gps-batch's final real coverage and 99 % of it are reached
	// (null: never).
	CoverageRealAtTargetX  float64 `json:"coverage_real_at_target_x"`
	BandwidthXAtTargetReal float64 `json:"bandwidth_x_at_target_real"`
	ProbesTotalToBatchReal *int64  `json:"probes_total_to_batch_real"`
	ProbesTotalToReal99    *int64  `json:"probes_total_to_real_99"`
}

// The headline targets of issue #16.
const (
	TargetX    = 300   // bandwidth, times less than exhaustive
	TargetReal = 0.925 // real coverage, GPS's reported coverage
)

// Summary is summary.json. probes_to_real and probes_to count probes after
// the seed; add seed_probes for the total.
type Summary struct {
	World        string `json:"world"`
	RealServices int    `json:"real_services"`
	SeedReal     int    `json:"seed_real_services"`
	// ExhaustiveTotal is every port of every address of the world's /16s:
	// the bandwidth_x of every policy is this over its probes_total.
	ExhaustiveTotal uint64                  `json:"exhaustive_probes_total"`
	Services        int                     `json:"services"`
	Seed            int                     `json:"seed_services"`
	SeedCost        uint64                  `json:"seed_probes"`
	Hitrate         float64                 `json:"hitrate"`
	Step            int                     `json:"step"`
	Budget          uint64                  `json:"budget,omitempty"`
	Order           []string                `json:"order"`
	Policies        map[string]PolicyResult `json:"policies"`
	TargetX         float64                 `json:"target_x"`
	TargetReal      float64                 `json:"target_real"`
	BatchTotal      uint64                  `json:"batch_probes_total"`
	Curves          []*Curve                `json:"-"`
	// Cycles is the replay over cycles, for a world that has them.
	Cycles *CyclesResult `json:"cycles,omitempty"`
}

// progressEvery is how often Run logs gps-stream's progress.
const progressEvery = 2 * time.Second

// Run replays the world under every policy and writes OUT/summary.json,
// OUT/curves.csv and OUT/coverage.png. The table goes to stdout.
func Run(c Config, stdout io.Writer, log *zap.Logger) (*Summary, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	w, err := LoadWorld(c.World)
	if err != nil {
		return nil, err
	}
	log.Info("world loaded", zap.Int("services", w.Services()), zap.Int("seed_services", len(w.seedSet)),
		zap.Int("slash16s", w.NSlash16), zap.Float64("seed_frac", w.SeedFrac), zap.Duration("elapsed", time.Since(start)))
	curves, batchProbes := Replay(w, c.Params, log)
	var cyc *CyclesResult
	if w.Meta.Cycles() > 0 {
		if cyc, err = ReplayCycles(c.World, w, c.Params, c.Cycle, log); err != nil {
			return nil, err
		}
	}
	s, err := write(c, w, curves, batchProbes, cyc, stdout)
	if err != nil {
		return nil, err
	}
	log.Info("eval done", zap.String("out", c.Out), zap.Duration("elapsed", time.Since(start)))
	return s, nil
}

// Replay replays the world under every policy; it returns their curves and
// gps-batch's probes (where coverage_at_batch_probes is read). The long
// replays (gps-batch, gps-stream, gps-stream-own) run at once, each on its
// own goroutine: they share only the world, which none of them changes,
// and each curve is what it would be alone.
func Replay(w *World, p Params, log *zap.Logger) ([]*Curve, uint64) {
	timed := func(name string, f func() *Curve) *Curve {
		t := time.Now()
		cv := f()
		e := cv.End()
		log.Info("policy replayed", zap.String("policy", name), zap.Uint64("probes", e.Probes), zap.Int("found", e.Found),
			zap.Duration("elapsed", time.Since(t)))
		return cv
	}
	var br *BatchResult
	var batch, stream, own *Curve
	var wg sync.WaitGroup
	wg.Go(func() { batch = timed("gps-batch", func() *Curve { br = Batch(w, p); return br.Curve }) })
	wg.Go(func() {
		stream = timed("gps-stream", func() *Curve {
			t, last := time.Now(), time.Now()
			cv, st := Stream(w, p, func(pt Point) {
				if time.Since(last) < progressEvery {
					return
				}
				last = time.Now()
				log.Info("gps-stream progress", zap.Uint64("probes", pt.Probes), zap.Int("found", pt.Found),
					zap.Duration("elapsed", time.Since(t)))
			})
			log.Info("gps-stream done", zap.Int("groups", st.Groups), zap.Int("chunks", st.Chunks), zap.Int("predictions", st.Predictions),
				zap.Int("hits", st.Hits), zap.Int("dropped", st.Dropped), zap.Int("model_services", st.ModelServices),
				zap.Duration("sim_time_at_100kpps", st.SimTime))
			return cv
		})
	})
	if p.OwnSeed > 0 {
		wg.Go(func() {
			own = timed("gps-stream-own", func() *Curve {
				cv, st := Explore(w, p)
				log.Info("gps-stream-own done", zap.Int("random_seeds", st.RandomSeeds), zap.Int("random_hosts", st.RandomHosts), zap.Int("random_dups", st.RandomDups),
					zap.Int("host_seeds", st.HostSeeds), zap.Int("learned_ports", st.LearnedPorts), zap.Int("sweeps", st.Sweeps),
					zap.Int("chunks", st.Chunks), zap.Int("predictions", st.Predictions), zap.Int("dropped", st.Dropped))
				return cv
			})
		})
	}
	curves := []*Curve{
		timed("exhaustive", func() *Curve { return Exhaustive(w, p) }),
		timed("popularity", func() *Curve { return Popularity(w, p) }),
	}
	oracle := timed("oracle", func() *Curve { return Oracle(w, p) })
	wg.Wait()
	curves = append(curves, batch, stream, oracle)
	if own != nil {
		curves = append(curves, own)
	}
	return curves, br.Curve.End().Probes
}

// Write sums up the curves and writes OUT/summary.json, OUT/curves.csv and
// OUT/coverage.png, then the table to stdout. Everything is rendered before
// OUT is touched, so that an error leaves the previous outputs as they were.
func Write(c Config, w *World, curves []*Curve, batchProbes uint64, stdout io.Writer) (*Summary, error) {
	return write(c, w, curves, batchProbes, nil, stdout)
}

// write is Write with the replay over cycles, if cyc is not nil: it goes
// into summary.json, OUT/cycles.csv and OUT/cycles.png, and its table
// after the other.
func write(c Config, w *World, curves []*Curve, batchProbes uint64, cyc *CyclesResult, stdout io.Writer) (*Summary, error) {
	s := summarize(w, c, curves, batchProbes)
	s.Cycles = cyc
	sumPath, csvPath, pngPath := filepath.Join(c.Out, "summary.json"), filepath.Join(c.Out, "curves.csv"), filepath.Join(c.Out, "coverage.png")
	var sumBuf, csvBuf, pngBuf bytes.Buffer
	enc := json.NewEncoder(&sumBuf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("render %s: %w", sumPath, err)
	}
	if err := writeCSV(&csvBuf, w, curves); err != nil {
		return nil, fmt.Errorf("render %s: %w", csvPath, err)
	}
	if err := plotCurves(&pngBuf, w, curves, c.World); err != nil {
		return nil, fmt.Errorf("render %s: %w", pngPath, err)
	}
	files := map[string]func(io.Writer) error{}
	order := []string{sumPath, csvPath, pngPath}
	if cyc != nil {
		cycCSV, cycPNG, err := renderCycles(c, cyc, files)
		if err != nil {
			return nil, err
		}
		order = append(order, cycCSV, cycPNG)
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return nil, fmt.Errorf("make output dir: %w", err)
	}
	copyOf := func(b *bytes.Buffer) func(io.Writer) error {
		return func(wr io.Writer) error { _, err := wr.Write(b.Bytes()); return err }
	}
	files[sumPath], files[csvPath], files[pngPath] = copyOf(&sumBuf), copyOf(&csvBuf), copyOf(&pngBuf)
	if err := atomicfile.Set(files, order); err != nil {
		return nil, err
	}
	if err := WriteTable(stdout, s); err != nil {
		return nil, err
	}
	if cyc != nil {
		if err := WriteCyclesTable(stdout, cyc); err != nil {
			return nil, err
		}
	}
	return s, nil
}

var thresholds = []struct {
	key string
	v   float64
}{{"0.90", 0.90}, {"0.95", 0.95}, {"0.99", 0.99}}

func summarize(w *World, c Config, curves []*Curve, batchProbes uint64) *Summary {
	s := &Summary{World: c.World, RealServices: w.RealServices(), SeedReal: w.seedReal, ExhaustiveTotal: w.Addresses() * 65535,
		Services: w.Services(), Seed: len(w.seedSet), SeedCost: w.SeedCost(),
		Hitrate: c.Hitrate, Step: c.Step, Budget: c.Budget, Policies: map[string]PolicyResult{}, Curves: curves,
		TargetX: TargetX, TargetReal: TargetReal, BatchTotal: batchProbes + w.SeedCost()}
	total, real := float64(w.Services()), float64(max(w.RealServices(), 1))
	var batchReal float64
	for _, cv := range curves {
		if cv.Name == "gps-batch" {
			batchReal = float64(cv.End().Real)
		}
	}
	for _, cv := range curves {
		e := cv.End()
		sc := cv.SeedCost(w)
		// Every policy is read at the same probes_total as gps-batch, the
		// seed included, whichever seed it took.
		atBatch := s.BatchTotal - min(sc, s.BatchTotal)
		r := PolicyResult{CoverageReal: float64(e.Real) / real, FoundReal: e.Real, ProbesTotal: e.Probes + sc,
			CoverageRealAtBatchProbes: cv.RealAtTotal(w, s.BatchTotal) / real, ProbesToReal: map[string]*int64{},
			Probes: e.Probes, Found: e.Found, Coverage: float64(e.Found) / total,
			CoverageAtBatchProbes: cv.FoundAt(atBatch) / total, ProbesTo: map[string]*int64{},
			CoverageRealAtTargetX:  cv.RealAtTotal(w, s.ExhaustiveTotal/TargetX) / real,
			ProbesTotalToBatchReal: nonNegative(cv.RealTotalTo(w, batchReal)),
			ProbesTotalToReal99:    nonNegative(cv.RealTotalTo(w, 0.99*real))}
		if sc > s.BatchTotal {
			r.CoverageAtBatchProbes = 0
		}
		if n := cv.RealTotalTo(w, TargetReal*real); n > 0 {
			r.BandwidthXAtTargetReal = float64(s.ExhaustiveTotal) / float64(n)
		}
		if r.ProbesTotal > 0 {
			r.BandwidthX = float64(s.ExhaustiveTotal) / float64(r.ProbesTotal)
		}
		if e.Probes > 0 {
			r.Precision = float64(e.Found-cv.Points[0].Found) / float64(e.Probes)
		}
		for _, th := range thresholds {
			r.ProbesTo[th.key] = nonNegative(cv.ProbesTo(th.v * total))
			r.ProbesToReal[th.key] = nonNegative(cv.RealProbesTo(th.v * real))
		}
		s.Order = append(s.Order, cv.Name)
		s.Policies[cv.Name] = r
	}
	return s
}

func nonNegative(n int64) *int64 {
	if n < 0 {
		return nil
	}
	return &n
}

// WriteTable prints the summary as an aligned table, real coverage first.
func WriteTable(wr io.Writer, s *Summary) error {
	tw := tabwriter.NewWriter(wr, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "policy\treal cov\treal@batch\treal@%dx\tx@%.1f%%\tto batch real\tprobes total\tbandwidth\tcoverage\tprobes\tprecision\treal 90%%\treal 95%%\treal 99%%\t\n",
		TargetX, 100*TargetReal)
	for _, name := range s.Order {
		r := s.Policies[name]
		fmt.Fprintf(tw, "%s\t%.4f\t%.4f\t%.4f\t%.0fx\t%s\t%s\t%.1fx\t%.4f\t%s\t%.3g\t%s\t%s\t%s\t\n", name, r.CoverageReal, r.CoverageRealAtBatchProbes,
			r.CoverageRealAtTargetX, r.BandwidthXAtTargetReal, humanP(r.ProbesTotalToBatchReal),
			human(float64(r.ProbesTotal)), r.BandwidthX, r.Coverage, human(float64(r.Probes)), r.Precision,
			humanP(r.ProbesToReal["0.90"]), humanP(r.ProbesToReal["0.95"]), humanP(r.ProbesToReal["0.99"]))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(wr, "(%d services in truth, %d of them real (hosts with at most %d ports); %d in the seed, which cost %s probes:\n"+
		" counted in probes total, not in probes or real 90/95/99%%; gps-stream-own takes and counts its own seed instead;\n"+
		" real@Nx is real coverage at N times less bandwidth than exhaustive, x@C the bandwidth at real coverage C, seed included)\n",
		s.Services, s.RealServices, PseudoPorts, s.Seed, human(float64(s.SeedCost)))
	return err
}

func humanP(p *int64) string {
	if p == nil {
		return "-"
	}
	return human(float64(*p))
}

func human(v float64) string {
	switch {
	case v >= 1e12:
		return strconv.FormatFloat(v/1e12, 'f', 2, 64) + "T"
	case v >= 1e9:
		return strconv.FormatFloat(v/1e9, 'f', 2, 64) + "G"
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 2, 64) + "M"
	case v >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 1, 64) + "K"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func writeCSV(wr io.Writer, w *World, curves []*Curve) error {
	// New columns go at the end, so that readers by position still work.
	if _, err := fmt.Fprintln(wr, "policy,probes,found,coverage,found_real,coverage_real,probes_total"); err != nil {
		return err
	}
	real := float64(max(w.RealServices(), 1))
	for _, cv := range curves {
		for _, p := range cv.Sample(2000) {
			if _, err := fmt.Fprintf(wr, "%s,%d,%d,%.6f,%d,%.6f,%d\n", cv.Name, p.Probes, p.Found, float64(p.Found)/float64(w.Services()),
				p.Real, float64(p.Real)/real, p.Probes+cv.SeedCost(w)); err != nil {
				return err
			}
		}
	}
	return nil
}
