package batch

import (
	"bytes"
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
	"github.com/gpsscan/gps/pkg/features"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/row"
)

func writeRows(t *testing.T, path string, rows []row.Row) {
	t.Helper()
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, `{"ip":%q,"p":%d,"asn":null,"data":%q,"fingerprint":%q,"w":null}`+"\n", r.IP, r.Port, r.Data, r.Fingerprint)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sameRows compares model rows read back into dict d with the rows of
// dictionary want: feature IDs differ between dictionaries, their strings
// must not.
func sameRows(t *testing.T, d *features.Dict, got []model.ModelRow, wantDict *features.Dict, want []model.ModelRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("model.jsonl has %d rows, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if !g.Single && d.String(g.Feat) != wantDict.String(w.Feat) {
			t.Fatalf("row %d: feature %q, want %q", i, d.String(g.Feat), wantDict.String(w.Feat))
		}
		g.Feat, w.Feat = 0, 0
		if g != w {
			t.Fatalf("row %d: %+v, want %+v", i, g, w)
		}
	}
}

// TestFilesRoundTrip runs `first` and `remaining` through their files and
// requires the same predictions as the in-memory path.
func TestFilesRoundTrip(t *testing.T) {
	dir, _ := labtest.WriteWorld(t, lab.Config{Seed: 11, Hosts: 3000, Slash16s: 4, SeedFrac: 0.5})
	seedPath := lab.WorldFile(dir, lab.SeedFile)
	out := filepath.Join(dir, "out")
	res, err := First(FirstConfig{Seed: seedPath, Out: out, Hitrate: 1e-5, Step: 16}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// Read the model back: same rows.
	d := features.NewDict()
	back, err := ReadModel(filepath.Join(out, ModelFile), d)
	if err != nil {
		t.Fatal(err)
	}
	sameRows(t, d, back, res.Model.Dict(), res.Rows)
	plan, err := ReadPlan(filepath.Join(out, PlanFile), 16)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != len(res.Plan) {
		t.Fatalf("plan.csv has %d rows, want %d", len(plan), len(res.Plan))
	}
	// The priors are what scanning the plan finds in truth.
	truth, err := row.ReadAll(lab.WorldFile(dir, lab.TruthFile))
	if err != nil {
		t.Fatal(err)
	}
	planned := gps.PlannedSet(res.Plan)
	var priors []row.Service
	for _, s := range truth {
		if planned[gps.Target{Addr: gps.Mask(s.Addr, 16), Port: uint16(s.Port)}] {
			priors = append(priors, s)
		}
	}
	priorsPath := filepath.Join(dir, "priors.jsonl")
	writeRowsFull(t, priorsPath, priors)
	preds, err := RemainingFiles(RemainingConfig{Seed: seedPath, Priors: priorsPath, Dir: out, Step: 16}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	seed, err := row.ReadAll(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	seedSet := map[gps.Target]bool{}
	for _, s := range seed {
		seedSet[gps.Target{Addr: s.Addr, Port: uint16(s.Port)}] = true
	}
	want := gps.Remaining(res.Model.Dict(), gps.RulesOf(res.Rows), res.Plan, priors, seedSet, 16)
	if !slices.Equal(preds, want) || len(want) == 0 {
		t.Fatalf("predictions from files: %d, in memory: %d", len(preds), len(want))
	}
	txt, err := os.ReadFile(filepath.Join(out, PredictionsFile))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(txt), "\n"); n != len(want) {
		t.Fatalf("predictions.txt has %d lines, want %d", n, len(want))
	}
}

func writeRowsFull(t *testing.T, path string, ss []row.Service) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, s := range ss {
		b, _ := json.Marshal(s.Row)
		f.Write(append(b, '\n'))
	}
}

// TestBadInput: a bad line names FILE:LINE, and no output is written.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	good := []row.Row{{IP: "127.1.0.1", Port: 22}, {IP: "127.1.0.1", Port: 80}}
	cases := map[string]string{
		"not json":                "{nope\n",
		"bad ip":                  `{"ip":"1271.0.0.1","p":80}` + "\n",
		"public ip ok but port 0": `{"ip":"127.1.0.2","p":0}` + "\n",
		"missing p":               `{"ip":"127.1.0.2"}` + "\n",
		"wrong type":              `{"ip":"127.1.0.2","p":"80"}` + "\n",
		"row too long":            `{"ip":"127.1.0.2","p":80,"data":"` + strings.Repeat("x", 10<<20) + `"}` + "\n",
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			seed := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".jsonl")
			writeRows(t, seed, good)
			f, _ := os.OpenFile(seed, os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString(bad)
			f.Close()
			out := filepath.Join(dir, "out-"+strings.ReplaceAll(name, " ", "_"))
			_, err := First(FirstConfig{Seed: seed, Out: out, Hitrate: 1e-5, Step: 16}, zap.NewNop())
			var le *row.LineError
			if !errors.As(err, &le) || le.Line != 3 || le.File != seed || !strings.Contains(err.Error(), seed+":3:") {
				t.Fatalf("error %v, want %s:3: ...", err, seed)
			}
			entries, _ := os.ReadDir(out)
			if len(entries) != 0 {
				t.Fatalf("output written despite the error: %v", entries)
			}
		})
	}
}

// TestEmptySeed: a seed with no services (empty, or blank lines only) is an
// error, and the model and plan of an earlier run stay byte for byte.
func TestEmptySeed(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed.jsonl")
	writeRows(t, seed, []row.Row{{IP: "127.1.0.1", Port: 22}, {IP: "127.1.0.1", Port: 80}, {IP: "127.1.0.2", Port: 22}})
	out := filepath.Join(dir, "out")
	if _, err := First(FirstConfig{Seed: seed, Out: out, Hitrate: 1e-5, Step: 16}, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	before := map[string][]byte{}
	for _, f := range []string{ModelFile, PlanFile} {
		before[f] = readFile(t, filepath.Join(out, f))
		if len(before[f]) == 0 {
			t.Fatalf("the good run wrote an empty %s", f)
		}
	}
	for name, data := range map[string]string{"empty": "", "blank lines": "\n  \n\n"} {
		t.Run(name, func(t *testing.T) {
			empty := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".jsonl")
			if err := os.WriteFile(empty, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := First(FirstConfig{Seed: empty, Out: out, Hitrate: 1e-5, Step: 16}, zap.NewNop())
			if !errors.Is(err, ErrEmptySeed) || !strings.Contains(err.Error(), empty) {
				t.Fatalf("error %v, want %v naming %s", err, ErrEmptySeed, empty)
			}
			for f, b := range before {
				if got := readFile(t, filepath.Join(out, f)); !bytes.Equal(got, b) {
					t.Fatalf("%s changed by the failed run", f)
				}
			}
			fresh := filepath.Join(dir, "fresh-"+strings.ReplaceAll(name, " ", "_"))
			if _, err := First(FirstConfig{Seed: empty, Out: fresh, Hitrate: 1e-5, Step: 16}, zap.NewNop()); err == nil {
				t.Fatal("no error")
			}
			if _, err := os.Stat(fresh); !os.IsNotExist(err) {
				t.Fatalf("output dir made for an empty seed")
			}
		})
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
