// Package batch is GPS as the original runs it, in files: Phase 1 (the model
// table and the priors plan, `gps first`) and Phase 2 (the remaining
// predictions, `gps remaining`), with the algorithm of pkg/gps.
package batch

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/atomicfile"
	"github.com/gpsscan/gps/pkg/features"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/progress"
	"github.com/gpsscan/gps/pkg/row"
)

// File names inside a GPS output directory.
const (
	ModelFile       = "model.jsonl"
	PlanFile        = "plan.csv"
	PredictionsFile = "predictions.txt"
)

// modelLine is one line of model.jsonl, GPS's own column names.
type modelLine struct {
	IP      string   `json:"ip"`
	P       *uint16  `json:"p"`
	NeededP uint16   `json:"neededP"`
	Count   *uint32  `json:"count"`
	Hitrate *float64 `json:"hitrate"`
	Support *uint32  `json:"support"`
	Feature *string  `json:"feature"`
}

// WriteModel writes model rows as JSON lines.
func WriteModel(w io.Writer, dict *features.Dict, rows []model.ModelRow) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range rows {
		r := &rows[i]
		l := modelLine{IP: row.FormatAddr(r.Addr), NeededP: r.NeededP}
		if !r.Single {
			f := dict.String(r.Feat)
			l.P, l.Count, l.Hitrate, l.Support, l.Feature = &r.P, &r.Count, &r.Hitrate, &r.Support, &f
		}
		if err := enc.Encode(&l); err != nil {
			return err
		}
	}
	return nil
}

// ReadModel reads model.jsonl, interning its features into dict.
func ReadModel(path string, dict *features.Dict) ([]model.ModelRow, error) {
	var rows []model.ModelRow
	err := row.EachFileLine(path, func(_ int, b []byte) error {
		var l modelLine
		if err := json.Unmarshal(b, &l); err != nil {
			return err
		}
		addr, err := row.ParseAddr(l.IP)
		if err != nil {
			return err
		}
		if l.NeededP == 0 {
			return errors.New(`"neededP" missing or 0`)
		}
		r := model.ModelRow{Addr: addr, NeededP: l.NeededP}
		if l.P == nil {
			r.Single = true
			rows = append(rows, r)
			return nil
		}
		if l.Feature == nil || l.Count == nil || l.Support == nil || l.Hitrate == nil {
			return errors.New(`a row with "p" needs "feature", "count", "support" and "hitrate"`)
		}
		f, err := dict.Parse(*l.Feature, true)
		if err != nil {
			return err
		}
		r.P = *l.P
		r.Evidence = model.Evidence{Port: l.NeededP, Feat: f, Count: *l.Count, Support: *l.Support, Hitrate: *l.Hitrate}
		rows = append(rows, r)
		return nil
	})
	return rows, err
}

// WritePlan writes the plan as GPS does: "port,a.b.c.d/step", no header.
func WritePlan(w io.Writer, plan []gps.PlanRow) error {
	for _, p := range plan {
		if _, err := fmt.Fprintf(w, "%d,%s/%d\n", p.Port, row.FormatAddr(p.Prefix), p.Step); err != nil {
			return err
		}
	}
	return nil
}

// ReadPlan reads plan.csv; every prefix must be a /step.
func ReadPlan(path string, step int) ([]gps.PlanRow, error) {
	var plan []gps.PlanRow
	err := row.EachFileLine(path, func(_ int, b []byte) error {
		port, pfx, ok := strings.Cut(string(b), ",")
		if !ok {
			return errors.New(`want "port,a.b.c.d/step"`)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil || p == 0 {
			return fmt.Errorf("bad port %q", port)
		}
		ip, bits, ok := strings.Cut(pfx, "/")
		if !ok {
			return fmt.Errorf("bad prefix %q", pfx)
		}
		addr, err := row.ParseAddr(ip)
		if err != nil {
			return err
		}
		if n, err := strconv.Atoi(bits); err != nil || n != step {
			return fmt.Errorf("prefix %q is not a /%d (the --step)", pfx, step)
		}
		if gps.Mask(addr, step) != addr {
			return fmt.Errorf("prefix %q has host bits set", pfx)
		}
		plan = append(plan, gps.PlanRow{Port: uint16(p), Prefix: addr, Step: step})
		return nil
	})
	return plan, err
}

// WriteTargets writes "ip:port" lines.
func WriteTargets(w io.Writer, ts []gps.Target) error {
	bw := bufio.NewWriter(w)
	var b []byte
	for _, t := range ts {
		b = append(b[:0], row.FormatAddr(t.Addr)...)
		b = append(b, ':')
		b = strconv.AppendUint(b, uint64(t.Port), 10)
		b = append(b, '\n')
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// FirstConfig configures Phase 1.
type FirstConfig struct {
	Seed    string
	Out     string
	Hitrate float64
	Step    int
}

// Validate checks the parameters.
func (c FirstConfig) Validate() error {
	if c.Seed == "" || c.Out == "" {
		return errors.New("need --seed FILE and --out DIR")
	}
	return validateParams(c.Hitrate, c.Step)
}

func validateParams(hitrate float64, step int) error {
	if step < 1 || step > 32 {
		return fmt.Errorf("--step %d: want 1..32", step)
	}
	if !(hitrate >= 0 && hitrate < 1) { // NaN fails every comparison
		return fmt.Errorf("--hitrate %g: want 0 <= hitrate < 1", hitrate)
	}
	return nil
}

// FirstResult is what Phase 1 made.
type FirstResult struct {
	Model *model.Model
	Rows  []model.ModelRow
	Plan  []gps.PlanRow
}

// ErrEmptySeed is returned for a seed file with no services: a model and a
// plan made from it would be empty, and replace good ones.
var ErrEmptySeed = errors.New("no services in the seed")

// LoadSeed builds a model from a seed file, logging progress. A seed with
// no services is an error (ErrEmptySeed).
func LoadSeed(path string, log *zap.Logger) (_ *model.Model, err error) {
	m := model.New()
	meter := progress.Start(log, "seed services read", 0, 5*time.Second)
	defer func() { meter.Finish(err) }()
	n := 0
	err = row.ReadFile(path, func(s row.Service) error {
		m.Add(&s)
		meter.Add(1)
		n++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read seed: %w", err)
	}
	if n == 0 {
		return nil, fmt.Errorf("read seed: %s: %w", path, ErrEmptySeed)
	}
	return m, nil
}

// First runs Phase 1 on a seed file and writes DIR/model.jsonl and DIR/plan.csv.
func First(c FirstConfig, log *zap.Logger) (*FirstResult, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	m, err := LoadSeed(c.Seed, log)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return nil, fmt.Errorf("make output dir: %w", err)
	}
	st := m.Stats()
	log.Info("model built", zap.Int("hosts", st.Hosts), zap.Int("counted_hosts", st.CountedHosts),
		zap.Int("pseudo_hosts", st.PseudoHosts), zap.Int("services", st.Services), zap.Int("keys", st.Keys),
		zap.Int("data_strings", st.Features), zap.Duration("elapsed", time.Since(start)))
	rows := m.Rows(c.Hitrate)
	plan := gps.Plan(rows, c.Step, c.Hitrate)
	log.Info("rules chosen", zap.Int("model_rows", len(rows)), zap.Int("plan_groups", len(plan)))
	modelPath, planPath := filepath.Join(c.Out, ModelFile), filepath.Join(c.Out, PlanFile)
	err = atomicfile.Set(map[string]func(io.Writer) error{
		modelPath: func(w io.Writer) error { return WriteModel(w, m.Dict(), rows) },
		planPath:  func(w io.Writer) error { return WritePlan(w, plan) },
	}, []string{modelPath, planPath})
	if err != nil {
		return nil, err
	}
	log.Info("first done", zap.String("model", modelPath), zap.String("plan", planPath), zap.Duration("elapsed", time.Since(start)))
	return &FirstResult{Model: m, Rows: rows, Plan: plan}, nil
}

// RemainingConfig configures Phase 2.
type RemainingConfig struct {
	Seed   string
	Priors string
	Dir    string
	Step   int
}

// Remaining runs Phase 2 from files and writes DIR/predictions.txt.
func RemainingFiles(c RemainingConfig, log *zap.Logger) ([]gps.Target, error) {
	if c.Seed == "" || c.Priors == "" || c.Dir == "" {
		return nil, errors.New("need --seed FILE, --priors FILE and --dir DIR")
	}
	if err := validateParams(0, c.Step); err != nil {
		return nil, err
	}
	start := time.Now()
	dict := features.NewDict()
	rows, err := ReadModel(filepath.Join(c.Dir, ModelFile), dict)
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	plan, err := ReadPlan(filepath.Join(c.Dir, PlanFile), c.Step)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	seed := make(map[gps.Target]bool)
	if err := row.ReadFile(c.Seed, func(s row.Service) error {
		seed[gps.Target{Addr: s.Addr, Port: uint16(s.Port)}] = true
		return nil
	}); err != nil {
		return nil, fmt.Errorf("read seed: %w", err)
	}
	priors, err := row.ReadAll(c.Priors)
	if err != nil {
		return nil, fmt.Errorf("read priors: %w", err)
	}
	preds := gps.Remaining(dict, gps.RulesOf(rows), plan, priors, seed, c.Step)
	out := filepath.Join(c.Dir, PredictionsFile)
	if err := atomicfile.Write(out, func(w io.Writer) error { return WriteTargets(w, preds) }); err != nil {
		return nil, err
	}
	log.Info("remaining done", zap.Int("model_rows", len(rows)), zap.Int("plan_groups", len(plan)),
		zap.Int("priors", len(priors)), zap.Int("predictions", len(preds)), zap.String("out", out),
		zap.Duration("elapsed", time.Since(start)))
	return preds, nil
}
