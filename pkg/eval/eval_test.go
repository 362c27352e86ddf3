package eval

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/batch"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
)

func makeWorld(t *testing.T, c lab.Config) string {
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

// TestBatchMatchesFirstAndRemaining: gps-batch finds exactly the plan's
// services plus what `gps first`/`gps remaining` predict, with the same
// probe count.
func TestBatchMatchesFirstAndRemaining(t *testing.T) {
	dir := makeWorld(t, lab.Config{Seed: 5, Hosts: 8000, Slash16s: 8, SeedFrac: 0.1})
	w, err := LoadWorld(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := Params{Hitrate: batch.DefaultHitrate, Step: 16}
	br := Batch(w, p)

	// The file path, as a user runs it.
	out := filepath.Join(dir, "gps")
	fr, err := batch.First(batch.FirstConfig{Seed: filepath.Join(dir, "seed.jsonl"), Out: out, Hitrate: p.Hitrate, Step: p.Step}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	planned := batch.PlannedSet(fr.Plan)
	priorsPath := filepath.Join(dir, "priors.jsonl")
	var buf bytes.Buffer
	want := map[batch.Target]bool{}
	for _, s := range w.Seed {
		want[batch.Target{Addr: s.Addr, Port: uint16(s.Port)}] = true
	}
	for _, s := range w.Truth {
		if planned[batch.Target{Addr: batch.Mask(s.Addr, p.Step), Port: uint16(s.Port)}] {
			b, _ := json.Marshal(s.Row)
			buf.Write(append(b, '\n'))
			want[batch.Target{Addr: s.Addr, Port: uint16(s.Port)}] = true
		}
	}
	if err := os.WriteFile(priorsPath, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	preds, err := batch.RemainingFiles(batch.RemainingConfig{Seed: filepath.Join(dir, "seed.jsonl"), Priors: priorsPath, Dir: out, Step: p.Step}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, t2 := range preds {
		if _, ok := w.byTarget[t2]; ok {
			want[t2] = true
		}
	}
	if len(br.Found) != len(want) {
		t.Fatalf("gps-batch found %d services, first+remaining give %d", len(br.Found), len(want))
	}
	for x := range want {
		if !br.Found[x] {
			t.Fatalf("gps-batch missed %v", x)
		}
	}
	wantProbes := uint64(len(fr.Plan))<<(32-p.Step) + uint64(len(preds))
	if e := br.Curve.End(); e.Probes != wantProbes || e.Found != len(want) {
		t.Fatalf("gps-batch ends at %+v, want %d probes and %d found", e, wantProbes, len(want))
	}
	if len(preds) == 0 || len(fr.Plan) == 0 {
		t.Fatalf("degenerate world: %d plan groups, %d predictions", len(fr.Plan), len(preds))
	}
}

// TestStreamBeatsBatch: on several worlds, gps-stream finds more services
// than gps-batch at gps-batch's probe count, or as many with fewer probes.
func TestStreamBeatsBatch(t *testing.T) {
	worlds := []lab.Config{
		{Seed: 1, Hosts: 10000, Slash16s: 8, SeedFrac: 0.05},
		{Seed: 2, Hosts: 20000, Slash16s: 16, SeedFrac: 0.03},
		{Seed: 3, Hosts: 15000, Slash16s: 4, SeedFrac: 0.02},
	}
	for _, c := range worlds {
		t.Run(fmt.Sprintf("seed%d_hosts%d", c.Seed, c.Hosts), func(t *testing.T) {
			w, err := LoadWorld(makeWorld(t, c))
			if err != nil {
				t.Fatal(err)
			}
			p := Params{Hitrate: batch.DefaultHitrate, Step: 16}
			b := Batch(w, p).Curve
			s, _ := Stream(w, p, nil)
			be := b.End()
			atBatch := s.FoundAt(be.Probes)
			fewer := s.ProbesTo(float64(be.Found))
			t.Logf("batch %d found in %d probes; stream %.0f at that many, reaches batch's count in %d", be.Found, be.Probes, atBatch, fewer)
			if atBatch <= float64(be.Found) && (fewer < 0 || uint64(fewer) >= be.Probes) {
				t.Fatalf("gps-stream does not beat gps-batch: %.0f found at %d probes vs %d", atBatch, be.Probes, be.Found)
			}
		})
	}
}

func TestRunWritesOutputs(t *testing.T) {
	dir := makeWorld(t, lab.Config{Seed: 9, Hosts: 5000, Slash16s: 4, SeedFrac: 0.1})
	out := filepath.Join(t.TempDir(), "eval")
	var table bytes.Buffer
	s, err := Run(Config{World: dir, Out: out, Params: Params{Hitrate: 1e-5, Step: 16}}, &table, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"summary.json", "curves.csv", "coverage.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", f, err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(out, "summary.json"))
	var back struct {
		Policies map[string]struct {
			Probes   uint64            `json:"probes"`
			Found    int               `json:"found"`
			Coverage float64           `json:"coverage"`
			ProbesTo map[string]*int64 `json:"probes_to"`
		} `json:"policies"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"exhaustive", "popularity", "gps-batch", "gps-stream", "oracle"} {
		r, ok := back.Policies[name]
		if !ok {
			t.Fatalf("summary lacks %s", name)
		}
		if len(r.ProbesTo) != 3 {
			t.Fatalf("%s probes_to = %v", name, r.ProbesTo)
		}
		if !strings.Contains(table.String(), name) {
			t.Fatalf("table lacks %s", name)
		}
	}
	if back.Policies["oracle"].Coverage != 1 || back.Policies["exhaustive"].Coverage != 1 {
		t.Fatalf("oracle and exhaustive must reach every service: %+v", back.Policies)
	}
	if o, e := back.Policies["oracle"], s.Policies["exhaustive"]; o.Probes >= e.Probes {
		t.Fatalf("oracle probes %d >= exhaustive %d", o.Probes, e.Probes)
	}
	if *back.Policies["oracle"].ProbesTo["0.90"] > *back.Policies["exhaustive"].ProbesTo["0.90"] {
		t.Fatalf("oracle slower to 90%% than exhaustive")
	}
}

// TestBudget: every policy stops at the budget.
func TestBudget(t *testing.T) {
	w, err := LoadWorld(makeWorld(t, lab.Config{Seed: 4, Hosts: 4000, Slash16s: 4, SeedFrac: 0.1}))
	if err != nil {
		t.Fatal(err)
	}
	p := Params{Hitrate: 1e-5, Step: 16, Budget: 300_000}
	for _, c := range []*Curve{Exhaustive(w, p), Popularity(w, p), Batch(w, p).Curve, func() *Curve { c, _ := Stream(w, p, nil); return c }()} {
		if e := c.End(); e.Probes > p.Budget {
			t.Errorf("%s sent %d probes over a budget of %d", c.Name, e.Probes, p.Budget)
		}
	}
}

func TestMalformedWorld(t *testing.T) {
	dir := makeWorld(t, lab.Config{Seed: 3, Hosts: 2000, Slash16s: 2, SeedFrac: 0.1})
	f, err := os.OpenFile(filepath.Join(dir, "truth.jsonl"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"ip":"127.1.0.1","p":"eighty"}` + "\n")
	f.Close()
	lines := bytes.Count(must(os.ReadFile(filepath.Join(dir, "truth.jsonl"))), []byte("\n"))
	out := filepath.Join(t.TempDir(), "eval")
	_, err = Run(Config{World: dir, Out: out, Params: Params{Hitrate: 1e-5, Step: 16}}, &bytes.Buffer{}, zap.NewNop())
	var le *row.LineError
	if !errors.As(err, &le) || le.Line != lines || !strings.HasSuffix(le.File, "truth.jsonl") {
		t.Fatalf("error %v, want truth.jsonl:%d", err, lines)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("output dir made despite the error")
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestCurve(t *testing.T) {
	c := newCurve("x", 10, 0)
	c.Spend(100, 50) // 10 -> 60 over 100 probes
	c.Spend(1000, 0)
	c.Spend(10, 40) // -> 100
	if got := c.FoundAt(50); got != 35 {
		t.Errorf("FoundAt(50) = %v, want 35", got)
	}
	if got := c.FoundAt(1e9); got != 100 {
		t.Errorf("FoundAt past the end = %v", got)
	}
	if got := c.ProbesTo(60); got != 100 {
		t.Errorf("ProbesTo(60) = %d, want 100", got)
	}
	if got := c.ProbesTo(80); got != 1105 {
		t.Errorf("ProbesTo(80) = %d, want 1105", got)
	}
	if got := c.ProbesTo(101); got != -1 {
		t.Errorf("ProbesTo unreachable = %d", got)
	}
	b := newCurve("b", 0, 150)
	b.Spend(100, 10)
	if b.Spend(100, 10) {
		t.Errorf("budget not reported exhausted")
	}
	if e := b.End(); e.Probes != 150 || e.Found != 15 {
		t.Errorf("cut at %+v, want 150 probes, 15 found", e)
	}
}
