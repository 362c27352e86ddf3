package eval

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
)

// writeTinyTimeline writes a world of one /16 by hand: at cycle 0 host A
// (127.1.0.1) on 80 and 443, host B (127.1.0.2) on 22 and the seed host S
// (127.1.0.9) on 80; at cycle 1 A's 443 is gone, B moved to 127.1.0.3 and
// D (127.1.0.4) came up on 80. The seed is one address (seed_frac 2^-16).
func writeTinyTimeline(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		lab.MetaFile: `{"hosts":3,"services":4,"seed_hosts":1,"seed_services":1,` +
			`"params":{"seed":1,"slash16s":1,"seed_frac":0.0000152587890625,"cycles":1}}`,
		lab.TruthFile: `{"ip":"127.1.0.1","p":80,"asn":1,"data":"HTTP/1.1 200 OK","fingerprint":"http","w":1024}
{"ip":"127.1.0.1","p":443,"asn":1,"data":"","fingerprint":"tls","w":1024}
{"ip":"127.1.0.2","p":22,"asn":1,"data":"SSH-2.0-x","fingerprint":"ssh","w":1024}
{"ip":"127.1.0.9","p":80,"asn":1,"data":"HTTP/1.1 200 OK","fingerprint":"http","w":1024}
`,
		lab.SeedFile: `{"ip":"127.1.0.9","p":80,"asn":1,"data":"HTTP/1.1 200 OK","fingerprint":"http","w":1024}
`,
		filepath.Join(lab.ChangesDir, "cycle-0001.jsonl"): `{"op":"del","cause":"gone-service","ip":"127.1.0.1","p":443}
{"op":"move","cause":"dhcp","ip":"127.1.0.2","to":"127.1.0.3"}
{"op":"add","cause":"new-host","row":{"ip":"127.1.0.4","p":80,"asn":1,"data":"HTTP/1.1 200 OK","fingerprint":"http","w":1024}}
`,
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func target(t *testing.T, ip string, port uint16) gps.Target {
	t.Helper()
	a, err := row.ParseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	return gps.Target{Addr: a, Port: port}
}

// tinyCycle1 is the tiny timeline's world at cycle 1, with the seed of
// cycle 0 (127.1.0.9).
func tinyCycle1(t *testing.T, dir string, base *World) *World {
	t.Helper()
	tl, err := lab.OpenTimeline(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tl.Next(); err != nil {
		t.Fatal(err)
	}
	return cycleWorld(base, tl.Services(), []uint32{target(t, "127.1.0.9", 0).Addr}, base.SeedFrac)
}

// TestCycleMetricsTiny: refresh+gps on the tiny timeline, numbers by hand.
// Cycle 0 holds all 4 services; in cycle 1 the refresh probes those 4 (4
// probes), drops A:443 and B's old 127.1.0.2:22, keeps A:80 and S:80, and
// a GPS run that found D:80 after 10 probes adds it: 3 of the 4 services
// of cycle 1 (B's new address is missed), nothing stale.
func TestCycleMetricsTiny(t *testing.T) {
	dir := writeTinyTimeline(t)
	base, err := LoadWorld(dir)
	if err != nil {
		t.Fatal(err)
	}
	if base.SeedCost() != 65535 {
		t.Fatalf("seed cost %d, want one address on every port", base.SeedCost())
	}
	inv := newInventory()
	for tg := range base.byTarget {
		inv.confirm(tg, rowsOf(base, tg), 0, 0)
	}
	r0 := inv.measure(base, 0, PolicyRefreshGPS, 100, 0, 0)
	if r0.Coverage != 1 || r0.CoverageReal != 1 || r0.Stale != 0 || r0.MeanAge != 1 {
		t.Fatalf("cycle 0: %+v, want all held, none stale, age 1", r0)
	}

	w1 := tinyCycle1(t, dir, base)
	// Measured against cycle 1 before any refresh, the moved host's old
	// address and the gone service are stale: 2 of 4.
	if r := inv.measure(w1, 1, "x", 1, 0, 0); r.Stale != 0.5 || r.Coverage != 0.5 {
		t.Fatalf("before refresh: stale %v coverage %v, want 0.5 and 0.5", r.Stale, r.Coverage)
	}
	delete(inv.spent, 1)

	d := target(t, "127.1.0.4", 80)
	c := newCurve("gps-batch", 1, 1, 0)
	c.Spend(10, 1, 1)
	br := &BatchResult{Curve: c, Found: map[gps.Target]bool{target(t, "127.1.0.9", 80): true, d: true}}
	r1 := refreshCycle(inv, w1, br, 1)
	if r1.Held != 3 || r1.Stale != 0 || math.Abs(r1.Coverage-0.75) > 1e-12 || math.Abs(r1.CoverageReal-0.75) > 1e-12 {
		t.Fatalf("cycle 1: %+v, want 3 held of 4, none stale", r1)
	}
	for _, gone := range []gps.Target{target(t, "127.1.0.1", 443), target(t, "127.1.0.2", 22)} {
		if inv.held[gone] != nil {
			t.Errorf("refresh kept %v, which is gone", gone)
		}
	}
	if want := uint64(4 + 65535 + 10); r1.Probes != want || r1.SeedProbes != 65535 {
		t.Fatalf("cycle 1 probes %d (seed %d), want %d (seed 65535)", r1.Probes, r1.SeedProbes, want)
	}
	// A:80 answered the refresh after 0.5 of P probes; S:80 and D:80 take
	// the GPS run's mean find time: S in the middle of the seed, D in the
	// middle of its 10 probes, after the 4 refreshes.
	P := float64(4 + 65535 + 10)
	batch := 4 + (65535.0/2+(65535+5))/2
	want := ((1 - 0.5/P) + 2*(1-batch/P)) / 3
	if math.Abs(r1.MeanAge-want) > 1e-9 {
		t.Fatalf("cycle 1 mean age %v, want %v", r1.MeanAge, want)
	}
}

// TestContinuousDropsGone: on a changing world the continuous policy holds
// nothing stale with gone-after 1 (every held service is probed each
// cycle), and with gone-after 2 it holds the services that failed once.
func TestContinuousDropsGone(t *testing.T) {
	dir := makeWorld(t, lab.Config{Seed: 3, Hosts: 2000, Slash16s: 1, SeedFrac: 0.05, PseudoFrac: -1, Cycles: 2, Churn: 3})
	base, err := LoadWorld(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := Params{Hitrate: gps.DefaultHitrate, Step: 16}
	stale := func(gone int) []float64 {
		res, err := ReplayCycles(dir, base, p, CycleParams{GoneAfter: gone}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		var s []float64
		for _, r := range res.Rows {
			if r.Policy == PolicyContinuous {
				s = append(s, r.Stale)
			}
		}
		return s
	}
	for k, s := range stale(1) {
		if s != 0 {
			t.Errorf("gone-after 1: cycle %d stale %v, want 0", k, s)
		}
	}
	s2 := stale(2)
	if s2[0] != 0 || s2[1] == 0 {
		t.Errorf("gone-after 2: stale %v, want 0 at cycle 0 and some at cycle 1", s2)
	}
}

// TestAnewIsBatchAtCycleZero: gps-anew's cycle 0 is gps-batch on the world
// as LoadWorld loads it, and continuous's cycle 0 is gps-stream.
func TestAnewIsBatchAtCycleZero(t *testing.T) {
	dir := makeWorld(t, lab.Config{Seed: 4, Hosts: 3000, Slash16s: 2, SeedFrac: 0.05, Cycles: 2})
	w, err := LoadWorld(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := Params{Hitrate: gps.DefaultHitrate, Step: 16}
	res, err := ReplayCycles(dir, w, p, CycleParams{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	be := Batch(w, p).Curve.End()
	se, _ := Stream(w, p, nil)
	for _, r := range res.Rows[:3] {
		e := be
		if r.Policy == PolicyContinuous {
			e = se.End()
		}
		if r.Cycle != 0 || r.Held != e.Found || r.Probes != w.SeedCost()+e.Probes ||
			r.CoverageReal != float64(e.Real)/float64(w.RealServices()) {
			t.Errorf("%s cycle 0: %+v, want held %d, probes %d, real %d", r.Policy, r, e.Found, w.SeedCost()+e.Probes, e.Real)
		}
	}
	if len(res.Rows) != 3*3 {
		t.Fatalf("%d rows, want 3 policies x 3 cycles", len(res.Rows))
	}
}

// TestRunWritesCycles: gps eval on a world with cycles writes cycles.csv
// (one row per cycle and policy), cycles.png and summary.json's cycles;
// --cycles limits them; a world without cycles gets none of it.
func TestRunWritesCycles(t *testing.T) {
	p := Params{Hitrate: gps.DefaultHitrate, Step: 16}
	dir := makeWorld(t, lab.Config{Seed: 6, Hosts: 2000, Slash16s: 2, SeedFrac: 0.05, Cycles: 3})
	out := filepath.Join(t.TempDir(), "eval")
	var table bytes.Buffer
	s, err := Run(Config{World: dir, Out: out, Params: p, Cycle: CycleParams{Cycles: 2}}, &table, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(out, "cycles.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1+3*len(CyclePolicies) || recs[0][0] != "cycle" || recs[0][7] != "mean_age" {
		t.Fatalf("cycles.csv: %d records, header %v; want a header and 3 cycles x %d policies", len(recs), recs[0], len(CyclePolicies))
	}
	seen := map[string]bool{}
	for _, r := range recs[1:] {
		seen[r[0]+" "+r[1]] = true
	}
	if len(seen) != 3*len(CyclePolicies) {
		t.Fatalf("cycles.csv rows are not one per cycle and policy: %v", seen)
	}
	if st, err := os.Stat(filepath.Join(out, "cycles.png")); err != nil || st.Size() == 0 {
		t.Fatalf("cycles.png: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(out, "summary.json"))
	if s.Cycles == nil || !strings.Contains(string(b), `"cycles": {`) || !strings.Contains(table.String(), "continuous") {
		t.Fatalf("summary.json or the table lack the cycles:\n%s", table.String())
	}

	plain := makeWorld(t, lab.Config{Seed: 6, Hosts: 2000, Slash16s: 2, SeedFrac: 0.05})
	out2 := filepath.Join(t.TempDir(), "eval")
	s2, err := Run(Config{World: plain, Out: out2, Params: p}, &bytes.Buffer{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cycles.csv", "cycles.png"} {
		if _, err := os.Stat(filepath.Join(out2, name)); !os.IsNotExist(err) {
			t.Errorf("%s on a world without cycles: %v", name, err)
		}
	}
	b2, _ := os.ReadFile(filepath.Join(out2, "summary.json"))
	if s2.Cycles != nil || strings.Contains(string(b2), `"cycles"`) {
		t.Errorf("summary.json of a world without cycles has cycles")
	}
}
