package batch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/internal/gpsref"
	"github.com/gpsscan/gps/pkg/features"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/row"
)

func services(t testing.TB, rows []row.Row) []row.Service {
	t.Helper()
	out := make([]row.Service, len(rows))
	for i, r := range rows {
		a, err := r.Validate()
		if err != nil {
			t.Fatal(err)
		}
		out[i] = row.Service{Row: r, Addr: a}
	}
	return out
}

func renderOurs(d *features.Dict, rows []model.ModelRow) []string {
	var out []string
	for _, r := range rows {
		if r.Single {
			out = append(out, fmt.Sprintf("%s|-|%d", row.FormatAddr(r.Addr), r.NeededP))
			continue
		}
		out = append(out, fmt.Sprintf("%s|%d|%d|%d|%d|%v|%q", row.FormatAddr(r.Addr), r.P, r.NeededP, r.Count, r.Support, r.Hitrate, d.String(r.Feat)))
	}
	slices.Sort(out)
	return out
}

func renderRef(rows []gpsref.ModelRow) []string {
	var out []string
	for _, r := range rows {
		if r.P == nil {
			out = append(out, fmt.Sprintf("%s|-|%d", r.IP, r.NeededP))
			continue
		}
		out = append(out, fmt.Sprintf("%s|%d|%d|%d|%d|%v|%q", r.IP, *r.P, r.NeededP, r.Count, r.Support, r.Hitrate, *r.Feature))
	}
	slices.Sort(out)
	return out
}

func planStrings(plan []PlanRow) []string {
	var out []string
	for _, p := range plan {
		out = append(out, fmt.Sprintf("%d,%s/%d,%d", p.Port, row.FormatAddr(p.Prefix), p.Step, p.Count))
	}
	slices.Sort(out)
	return out
}

func refPlanStrings(plan []gpsref.PlanRow) []string {
	var out []string
	for _, p := range plan {
		out = append(out, fmt.Sprintf("%d,%s,%d", p.Port, p.Prefix, p.Count))
	}
	slices.Sort(out)
	return out
}

// priorsOf is what scanning the plan finds in truth.
func priorsOf(truth []row.Service, plan []PlanRow, step int) []row.Service {
	planned := PlannedSet(plan)
	var out []row.Service
	for _, s := range truth {
		if planned[Target{Mask(s.Addr, step), uint16(s.Port)}] {
			out = append(out, s)
		}
	}
	return out
}

func rowsOf(ss []row.Service) []row.Row {
	out := make([]row.Row, len(ss))
	for i := range ss {
		out[i] = ss[i].Row
	}
	return out
}

// compare runs our batch GPS and the plain-maps reference on one seed and
// truth and requires the model rows, plan and predictions to be equal sets.
func compare(t *testing.T, seed, truth []row.Service, hitrate float64, step int) (nRows, nPlan, nPred int) {
	t.Helper()
	m := model.New()
	for i := range seed {
		m.Add(&seed[i])
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	rows := m.Rows(hitrate)
	ref := gpsref.Model(rowsOf(seed), hitrate)
	if got, want := renderOurs(m.Dict(), rows), renderRef(ref); !slices.Equal(got, want) {
		t.Fatalf("model rows differ from the reference:\n%s", diff(got, want))
	}
	plan := Plan(rows, step, hitrate)
	refPlan := gpsref.Plan(ref, step, hitrate)
	if got, want := planStrings(plan), refPlanStrings(refPlan); !slices.Equal(got, want) {
		t.Fatalf("plan differs from the reference:\n%s", diff(got, want))
	}
	priors := priorsOf(truth, plan, step)
	seedSet := map[Target]bool{}
	for _, s := range seed {
		seedSet[Target{s.Addr, uint16(s.Port)}] = true
	}
	preds := Remaining(m.Dict(), RulesOf(rows), plan, priors, seedSet, step)
	var got []string
	for _, p := range preds {
		got = append(got, fmt.Sprintf("%s:%d", row.FormatAddr(p.Addr), p.Port))
	}
	slices.Sort(got)
	want := gpsref.Predict(ref, refPlan, rowsOf(priors), rowsOf(seed), step)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("predictions differ from the reference:\n%s", diff(got, want))
	}
	return len(rows), len(plan), len(preds)
}

func diff(got, want []string) string {
	var b strings.Builder
	g, w := map[string]bool{}, map[string]bool{}
	for _, x := range got {
		g[x] = true
	}
	for _, x := range want {
		w[x] = true
	}
	n := 0
	for _, x := range got {
		if !w[x] && n < 10 {
			fmt.Fprintf(&b, "  only ours: %s\n", x)
			n++
		}
	}
	for _, x := range want {
		if !g[x] && n < 20 {
			fmt.Fprintf(&b, "  only reference: %s\n", x)
			n++
		}
	}
	fmt.Fprintf(&b, "  (%d ours, %d reference)", len(got), len(want))
	return b.String()
}

// TestAgainstReferenceOnLabWorlds: on generated worlds, model rows (hitrates
// equal as float64), plan and predictions equal the reference's exactly.
func TestAgainstReferenceOnLabWorlds(t *testing.T) {
	cases := []struct {
		seed     int64
		hosts    int
		slash16s int
		frac     float64
		hitrate  float64
		step     int
	}{
		{1, 4000, 4, 0.5, 1e-5, 16},
		{2, 6000, 8, 0.3, 1e-5, 16},
		{3, 3000, 2, 0.8, 1e-3, 20},
		{4, 5000, 16, 0.25, 0, 24},
	}
	if testing.Short() {
		cases = cases[:2]
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("seed%d_hosts%d", c.seed, c.hosts), func(t *testing.T) {
			w, err := lab.Generate(lab.Config{Seed: c.seed, Hosts: c.hosts, Slash16s: c.slash16s, SeedFrac: c.frac}.WithDefaults())
			if err != nil {
				t.Fatal(err)
			}
			seed, truth := services(t, w.Seed), services(t, w.Truth)
			r, p, n := compare(t, seed, truth, c.hitrate, c.step)
			t.Logf("%d seed services: %d model rows, %d plan groups, %d predictions", len(seed), r, p, n)
			if r == 0 || p == 0 || n == 0 {
				t.Fatalf("a degenerate world: %d rows, %d plan groups, %d predictions", r, p, n)
			}
		})
	}
}

// TestAgainstReferenceOnRandomRows covers what lab worlds rarely do: many
// duplicates, null fields, ties everywhere.
func TestAgainstReferenceOnRandomRows(t *testing.T) {
	for s := uint64(1); s <= 5; s++ {
		t.Run(fmt.Sprint(s), func(t *testing.T) {
			r := rand.New(rand.NewPCG(s, 7))
			var rows []row.Row
			banners := []string{"A", "B\nC", "", "Ünïcode ☃", "SSH-2.0-x"}
			fps := []string{"ssh", "tls", "http", ""}
			for h := 0; h < 400; h++ {
				ip := fmt.Sprintf("127.%d.%d.%d", 1+r.IntN(2), r.IntN(8), r.IntN(256))
				var asn *int64
				if r.IntN(3) > 0 {
					a := int64(r.IntN(3))
					asn = &a
				}
				for _, p := range r.Perm(13)[:1+r.IntN(4)] {
					x := row.Row{IP: ip, Port: 20 + p, ASN: asn, Data: banners[r.IntN(len(banners))], Fingerprint: fps[r.IntN(len(fps))]}
					if x.Fingerprint == "tls" {
						c := fmt.Sprint("c", r.IntN(2))
						x.TLSCert, x.TLSOIDs = &c, []string{"1.2.3.4", "1.2.3.4.5"}
					}
					rows = append(rows, x)
					if r.IntN(8) == 0 {
						x.Data = banners[r.IntN(len(banners))]
						rows = append(rows, x)
					}
				}
			}
			all := services(t, rows)
			compare(t, all[:len(all)/2], all, 1e-5, 16+int(s))
		})
	}
}

// TestRules checks each GPS rule on a hand-made seed with known answers.
func TestRules(t *testing.T) {
	// h(i, ports...) is a host 127.1.0.i with http "x" on each port.
	mk := func(ip string, port int, data, fp string) row.Row {
		return row.Row{IP: ip, Port: port, Data: data, Fingerprint: fp}
	}
	var seed []row.Row
	// Four hosts with 22 (banner S) and 80: count(22, *, 80) = 4 for shared features.
	for i := 1; i <= 4; i++ {
		ip := fmt.Sprintf("127.1.0.%d", i)
		seed = append(seed, mk(ip, 22, "S", "ssh"), mk(ip, 80, "H", "http"))
	}
	// Two hosts with 22 (banner T) and 8080: count 2 -> dropped.
	for i := 5; i <= 6; i++ {
		ip := fmt.Sprintf("127.1.0.%d", i)
		seed = append(seed, mk(ip, 22, "T", "ssh"), mk(ip, 8080, "H", "http"))
	}
	// A single-port host and an 11-port host.
	seed = append(seed, mk("127.1.0.7", 443, "", "tls"))
	for p := 1; p <= 11; p++ {
		seed = append(seed, mk("127.1.0.8", p, "S", "ssh"))
	}
	ss := services(t, seed)
	m := model.New()
	for i := range ss {
		m.Add(&ss[i])
	}
	rows := m.Rows(1e-5)
	byKey := map[string]model.ModelRow{}
	for _, r := range rows {
		byKey[fmt.Sprintf("%s/%d", row.FormatAddr(r.Addr), r.P)] = r
	}
	// 127.1.0.1:80 is predicted by 22 with hitrate 4/6 ("fingerprint: ssh"
	// and the other shared features have support 6) or 4/4 (banner S only on
	// the four): the 4/4 one wins; among the 4/4 ties, the smallest string.
	r, ok := byKey["127.1.0.1/80"]
	if !ok || r.NeededP != 22 || r.Hitrate != 1 || r.Count != 4 || m.Dict().String(r.Feat) != "16:http line: S-7f010000" {
		t.Fatalf("127.1.0.1:80 row = %+v feature %q", r, m.Dict().String(r.Feat))
	}
	// 8080 has only count-2 rules: no row for it.
	if _, ok := byKey["127.1.0.5/8080"]; ok {
		t.Fatalf("a rule with count 2 was kept")
	}
	// The single-port host gives a Single row; the 11-port host gives none.
	var single, big int
	for _, r := range rows {
		if r.Single && row.FormatAddr(r.Addr) == "127.1.0.7" && r.NeededP == 443 {
			single++
		}
		if row.FormatAddr(r.Addr) == "127.1.0.8" {
			big++
		}
	}
	if single != 1 || big != 0 {
		t.Fatalf("single-port rows %d (want 1), 11-port host rows %d (want 0)", single, big)
	}
	// Hitrate threshold is strict: at exactly 1 nothing survives.
	for _, r := range m.Rows(1) {
		if !r.Single {
			t.Fatalf("row kept at hitrate threshold 1: %+v", r)
		}
	}
	// Streaming GPS's extra sweeps: the services no row explains, in groups
	// the plan does not already sweep: 8080 (two hosts) and ports 1..11 of
	// the 11-port host; the unexplained 22s of .5 and .6 are in a planned group.
	var seedTargets []Target
	for _, s := range ss {
		seedTargets = append(seedTargets, Target{s.Addr, uint16(s.Port)})
	}
	extra := Unexplained(rows, Plan(rows, 16, 1e-5), seedTargets, 16, 1e-5)
	if len(extra) != 12 || extra[0].Port != 8080 || extra[0].Count != 2 {
		t.Fatalf("unexplained groups = %+v, want 8080 x2 first and 12 in all", extra)
	}
	// And the whole thing agrees with the reference.
	compare(t, ss, ss, 1e-5, 16)
}

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

// TestFilesRoundTrip runs `first` and `remaining` through their files and
// requires the same predictions as the in-memory path.
func TestFilesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	w, err := lab.Generate(lab.Config{Seed: 11, Hosts: 3000, Slash16s: 4, SeedFrac: 0.5}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(dir); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	res, err := First(FirstConfig{Seed: filepath.Join(dir, "seed.jsonl"), Out: out, Hitrate: 1e-5, Step: 16}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// Read the model back: same rows.
	d := features.NewDict()
	back, err := ReadModel(filepath.Join(out, ModelFile), d)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := renderOurs(d, back), renderOurs(res.Model.Dict(), res.Rows); !slices.Equal(got, want) {
		t.Fatalf("model.jsonl does not round-trip:\n%s", diff(got, want))
	}
	plan, err := ReadPlan(filepath.Join(out, PlanFile), 16)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != len(res.Plan) {
		t.Fatalf("plan.csv has %d rows, want %d", len(plan), len(res.Plan))
	}
	truth := services(t, w.Truth)
	priors := priorsOf(truth, res.Plan, 16)
	priorsPath := filepath.Join(dir, "priors.jsonl")
	writeRowsFull(t, priorsPath, priors)
	preds, err := RemainingFiles(RemainingConfig{Seed: filepath.Join(dir, "seed.jsonl"), Priors: priorsPath, Dir: out, Step: 16}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	seedSet := map[Target]bool{}
	for _, s := range services(t, w.Seed) {
		seedSet[Target{s.Addr, uint16(s.Port)}] = true
	}
	want := Remaining(res.Model.Dict(), RulesOf(res.Rows), res.Plan, priors, seedSet, 16)
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
