package eval

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/pkg/batch"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
)

func makeWorld(t *testing.T, c lab.Config) string {
	t.Helper()
	dir, _ := labtest.WriteWorld(t, c)
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
	p := Params{Hitrate: gps.DefaultHitrate, Step: 16}
	br := Batch(w, p)

	// The file path, as a user runs it.
	out := filepath.Join(dir, "gps")
	fr, err := batch.First(batch.FirstConfig{Seed: filepath.Join(dir, "seed.jsonl"), Out: out, Hitrate: p.Hitrate, Step: p.Step}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	planned := gps.PlannedSet(fr.Plan)
	priorsPath := filepath.Join(dir, "priors.jsonl")
	var buf bytes.Buffer
	want := map[gps.Target]bool{}
	for _, s := range w.Seed {
		want[gps.Target{Addr: s.Addr, Port: uint16(s.Port)}] = true
	}
	for _, s := range w.Truth {
		if planned[gps.Target{Addr: gps.Mask(s.Addr, p.Step), Port: uint16(s.Port)}] {
			b, _ := json.Marshal(s.Row)
			buf.Write(append(b, '\n'))
			want[gps.Target{Addr: s.Addr, Port: uint16(s.Port)}] = true
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
			p := Params{Hitrate: gps.DefaultHitrate, Step: 16}
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
		SeedProbes   uint64 `json:"seed_probes"`
		RealServices int    `json:"real_services"`
		Services     int    `json:"services"`
		Policies     map[string]struct {
			Probes       uint64            `json:"probes"`
			ProbesTotal  uint64            `json:"probes_total"`
			BandwidthX   float64           `json:"bandwidth_x"`
			Found        int               `json:"found"`
			FoundReal    int               `json:"found_real"`
			Coverage     float64           `json:"coverage"`
			CoverageReal float64           `json:"coverage_real"`
			ProbesTo     map[string]*int64 `json:"probes_to"`
			ProbesToReal map[string]*int64 `json:"probes_to_real"`
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
		if len(r.ProbesTo) != 3 || len(r.ProbesToReal) != 3 {
			t.Fatalf("%s probes_to = %v, probes_to_real = %v", name, r.ProbesTo, r.ProbesToReal)
		}
		if r.ProbesTotal != r.Probes+back.SeedProbes || r.FoundReal > r.Found || r.CoverageReal <= 0 {
			t.Fatalf("%s: probes_total %d, probes %d, seed %d; found_real %d of %d, coverage_real %g",
				name, r.ProbesTotal, r.Probes, back.SeedProbes, r.FoundReal, r.Found, r.CoverageReal)
		}
		if !strings.Contains(table.String(), name) {
			t.Fatalf("table lacks %s", name)
		}
	}
	if back.Policies["oracle"].Coverage != 1 || back.Policies["exhaustive"].Coverage != 1 ||
		back.Policies["oracle"].CoverageReal != 1 || back.Policies["exhaustive"].CoverageReal != 1 {
		t.Fatalf("oracle and exhaustive must reach every service: %+v", back.Policies)
	}
	// The world has pseudo-service hosts (100-400 ports each), which real
	// coverage leaves out.
	if back.RealServices >= back.Services || back.RealServices == 0 {
		t.Fatalf("%d real services of %d: the pseudo-service hosts are not left out", back.RealServices, back.Services)
	}
	if x := back.Policies["exhaustive"].BandwidthX; x != 1 {
		t.Fatalf("exhaustive bandwidth_x = %g, want 1", x)
	}
	if b, o := back.Policies["gps-batch"].BandwidthX, back.Policies["oracle"].BandwidthX; b <= 1 || o <= b {
		t.Fatalf("bandwidth_x: gps-batch %g, oracle %g; want 1 < gps-batch < oracle", b, o)
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
	// gps-stream's scheduler cuts its last chunk to spend the budget exactly.
	if c, _ := Stream(w, p, nil); c.End().Probes != p.Budget {
		t.Errorf("gps-stream sent %d probes, want the budget %d", c.End().Probes, p.Budget)
	}
}

// TestMalformedWorld: a bad line in any file of a world is an error naming
// FILE:LINE, and OUT is left as it was (absent, or the previous outputs).
func TestMalformedWorld(t *testing.T) {
	good := makeWorld(t, lab.Config{Seed: 3, Hosts: 2000, Slash16s: 2, SeedFrac: 0.1})
	// replace line n (1-based) of a file; n == 0 appends.
	edit := func(file string, n int, text string) func(t *testing.T, dir string) int {
		return func(t *testing.T, dir string) int {
			path := filepath.Join(dir, file)
			lines := strings.SplitAfter(string(must(os.ReadFile(path))), "\n")
			if lines[len(lines)-1] == "" {
				lines = lines[:len(lines)-1]
			}
			if n == 0 {
				lines, n = append(lines, text+"\n"), len(lines)+1
			} else {
				lines[n-1] = text + "\n"
			}
			if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o644); err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	seedLine := strings.SplitAfter(string(must(os.ReadFile(filepath.Join(good, "seed.jsonl")))), "\n")[2]
	cases := []struct {
		name, file string
		break_     func(t *testing.T, dir string) int
	}{
		{"truth bad type", "truth.jsonl", edit("truth.jsonl", 0, `{"ip":"127.1.0.1","p":"eighty"}`)},
		{"truth bad ip", "truth.jsonl", edit("truth.jsonl", 17, `{"ip":"127.0.0.300","p":80}`)},
		{"truth cut line", "truth.jsonl", edit("truth.jsonl", 5, `{"ip":"127.0.0.1","p":`)},
		{"seed not json", "seed.jsonl", edit("seed.jsonl", 7, `not json`)},
		{"seed bad port", "seed.jsonl", edit("seed.jsonl", 2, `{"ip":"127.0.0.1","p":70000}`)},
		{"seed not in truth", "seed.jsonl", edit("seed.jsonl", 3, strings.Replace(seedLine, `"ip":"127.`, `"ip":"10.`, 1))},
		{"pfx2as bad len", "pfx2as.tsv", edit("pfx2as.tsv", 2, "127.0.0.0\tx\t5")},
		{"meta bad syntax", "meta.json", edit("meta.json", 3, `  "services": 1,,`)},
		{"meta bad type", "meta.json", edit("meta.json", 2, `  "hosts": "many",`)},
		{"meta trailing garbage", "meta.json", edit("meta.json", 0, `xyz`)},
		{"meta truncated", "meta.json", func(t *testing.T, dir string) int {
			path := filepath.Join(dir, "meta.json")
			b := must(os.ReadFile(path))
			b = b[:bytes.Index(b, []byte(`"services"`))+5]
			os.WriteFile(path, b, 0o644)
			return 1 + bytes.Count(b, []byte("\n"))
		}},
		{"meta empty", "meta.json", func(t *testing.T, dir string) int {
			os.WriteFile(filepath.Join(dir, "meta.json"), nil, 0o644)
			return 1
		}},
	}
	prevOut := filepath.Join(t.TempDir(), "prev")
	if _, err := Run(Config{World: good, Out: prevOut, Params: Params{Hitrate: 1e-5, Step: 16}}, &bytes.Buffer{}, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	snapshot := func(dir string) map[string]string {
		m := map[string]string{}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			m[e.Name()] = string(must(os.ReadFile(filepath.Join(dir, e.Name()))))
		}
		return m
	}
	prev := snapshot(prevOut)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{"truth.jsonl", "seed.jsonl", "pfx2as.tsv", "meta.json"} {
				if err := os.WriteFile(filepath.Join(dir, f), must(os.ReadFile(filepath.Join(good, f))), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			line := tc.break_(t, dir)
			fresh := filepath.Join(t.TempDir(), "eval")
			out := filepath.Join(t.TempDir(), "out")
			if err := os.CopyFS(out, os.DirFS(prevOut)); err != nil {
				t.Fatal(err)
			}
			for _, o := range []string{fresh, out} {
				_, err := Run(Config{World: dir, Out: o, Params: Params{Hitrate: 1e-5, Step: 16}}, &bytes.Buffer{}, zap.NewNop())
				var le *row.LineError
				if !errors.As(err, &le) || le.Line != line || le.File != filepath.Join(dir, tc.file) {
					t.Fatalf("error %v, want %s:%d", err, tc.file, line)
				}
				if want := fmt.Sprintf("%s:%d:", filepath.Join(dir, tc.file), line); !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q does not say %q", err, want)
				}
			}
			if _, err := os.Stat(fresh); !os.IsNotExist(err) {
				t.Fatalf("output dir made despite the error")
			}
			got := snapshot(out)
			if len(got) != len(prev) {
				t.Fatalf("OUT has %d files after the error, had %d", len(got), len(prev))
			}
			for name, b := range prev {
				if got[name] != b {
					t.Fatalf("%s changed despite the error", name)
				}
			}
		})
	}
}

// TestStreamDeterministic: two replays of one world give the same curve
// (map iteration order must not leak into the order of the work).
func TestStreamDeterministic(t *testing.T) {
	w, err := LoadWorld(makeWorld(t, lab.Config{Seed: 2, Hosts: 20000, Slash16s: 16, SeedFrac: 0.03}))
	if err != nil {
		t.Fatal(err)
	}
	p := Params{Hitrate: gps.DefaultHitrate, Step: 16}
	a, sa := Stream(w, p, nil)
	for i := 0; i < 2; i++ {
		b, sb := Stream(w, p, nil)
		if sa != sb || !slices.Equal(a.Points, b.Points) {
			t.Fatalf("run %d differs: %+v %d points vs %+v %d points", i+2, sa, len(a.Points), sb, len(b.Points))
		}
	}
}

// TestStreamProgress: progress is reported as the work goes, with the
// curve's end.
func TestStreamProgress(t *testing.T) {
	w, err := LoadWorld(makeWorld(t, lab.Config{Seed: 1, Hosts: 10000, Slash16s: 8, SeedFrac: 0.05}))
	if err != nil {
		t.Fatal(err)
	}
	var got []Point
	c, _ := Stream(w, Params{Hitrate: gps.DefaultHitrate, Step: 16}, func(p Point) { got = append(got, p) })
	if len(got) == 0 {
		t.Fatal("no progress reported")
	}
	for i, p := range got {
		if p.Probes > c.End().Probes || p.Found > c.End().Found || (i > 0 && p.Probes < got[i-1].Probes) {
			t.Fatalf("progress %d = %+v, end %+v", i, p, c.End())
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestCurve(t *testing.T) {
	c := newCurve("x", 10, 8, 0)
	c.Spend(100, 50, 40) // 10 -> 60 (8 -> 48 real) over 100 probes
	c.Spend(1000, 0, 0)
	c.Spend(10, 40, 20) // -> 100 (68 real)
	if got := c.FoundAt(50); got != 35 {
		t.Errorf("FoundAt(50) = %v, want 35", got)
	}
	if got := c.RealAt(50); got != 28 {
		t.Errorf("RealAt(50) = %v, want 28", got)
	}
	if got := c.RealProbesTo(58); got != 1105 {
		t.Errorf("RealProbesTo(58) = %d, want 1105", got)
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
	b := newCurve("b", 0, 0, 150)
	b.Spend(100, 10, 4)
	if b.Spend(100, 10, 4) {
		t.Errorf("budget not reported exhausted")
	}
	if e := b.End(); e.Probes != 150 || e.Found != 15 || e.Real != 6 {
		t.Errorf("cut at %+v, want 150 probes, 15 found, 6 real", e)
	}
}

// TestGzippedWorld: a world kept as truth.jsonl.gz and seed.jsonl.gz loads
// to the same world as the plain files.
func TestGzippedWorld(t *testing.T) {
	dir := makeWorld(t, lab.Config{Seed: 4, Hosts: 2000, Slash16s: 2, SeedFrac: 0.1})
	plain, err := LoadWorld(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{lab.TruthFile, lab.SeedFile} {
		p := filepath.Join(dir, name)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		if _, err := zw.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p+".gz", buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	gz, err := LoadWorld(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(gz.Truth) != len(plain.Truth) || len(gz.Seed) != len(plain.Seed) || gz.Services() != plain.Services() {
		t.Fatalf("gzipped world: %d truth, %d seed; plain: %d, %d", len(gz.Truth), len(gz.Seed), len(plain.Truth), len(plain.Seed))
	}
	for i := range plain.Truth {
		if gz.Truth[i].Addr != plain.Truth[i].Addr || gz.Truth[i].Port != plain.Truth[i].Port || gz.Truth[i].Data != plain.Truth[i].Data {
			t.Fatalf("truth row %d differs", i)
		}
	}
}
