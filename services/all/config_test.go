package all

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/services/modeler"
	"github.com/gpsscan/gps/services/predictor"
	"github.com/gpsscan/gps/services/prober"
	"github.com/gpsscan/gps/services/seeder"
)

func parse(t *testing.T, args ...string) Config {
	t.Helper()
	var c Config
	fs := flag.NewFlagSet("all", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFlagsAreTheServices: every flag of every service is a flag of gps all,
// with its default; a name two services share has one default.
func TestFlagsAreTheServices(t *testing.T) {
	var c Config
	all := flag.NewFlagSet("all", flag.ContinueOnError)
	c.RegisterFlags(all)
	services := map[string]func(*flag.FlagSet){
		"seeder":    new(seeder.Config).RegisterFlags,
		"modeler":   new(modeler.Config).RegisterFlags,
		"predictor": new(predictor.Config).RegisterFlags,
		"prober":    new(prober.Config).RegisterFlags,
	}
	for name, register := range services {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		register(fs)
		fs.VisitAll(func(f *flag.Flag) {
			a := all.Lookup(f.Name)
			switch {
			case a == nil:
				t.Errorf("%s --%s is no flag of gps all", name, f.Name)
			case a.DefValue != f.DefValue:
				t.Errorf("%s --%s: default %q, gps all's %q", name, f.Name, f.DefValue, a.DefValue)
			}
		})
	}
}

// TestSharedFlags: one flag sets every service that has it.
func TestSharedFlags(t *testing.T) {
	c := parse(t, "--hitrate", "0.001", "--allow", "10.0.0.0/8", "--snapshot-every", "7", "--step", "20", "--batch", "9", "--min-probability", "0.5", "--live")
	switch {
	case c.Modeler.Hitrate != 0.001 || c.Predictor.Hitrate != 0.001:
		t.Errorf("--hitrate: modeler %g, predictor %g", c.Modeler.Hitrate, c.Predictor.Hitrate)
	case !slices.Equal(c.Seeder.Allow, []string{"10.0.0.0/8"}) || !slices.Equal(c.Prober.Allow, []string{"10.0.0.0/8"}):
		t.Errorf("--allow: seeder %v, prober %v", c.Seeder.Allow, c.Prober.Allow)
	case c.Modeler.SnapshotEvery != 7 || c.Predictor.SnapshotEvery != 7:
		t.Errorf("--snapshot-every: modeler %d, predictor %d", c.Modeler.SnapshotEvery, c.Predictor.SnapshotEvery)
	case c.Modeler.Step != 20 || c.Seeder.Batch != 9 || c.Prober.Hitrate != 0.5 || !c.Prober.Live:
		t.Errorf("one service's flags: step %d, batch %d, min-probability %g, live %v", c.Modeler.Step, c.Seeder.Batch, c.Prober.Hitrate, c.Prober.Live)
	}
}

// TestWorld: what --world means for each service, and the flags given
// winning over it.
func TestWorld(t *testing.T) {
	const w = "/w"
	sim := parse(t, "--world", w, "--hitrate", "0.001").resolved()
	if sim.Seeder.Import != lab.WorldFile(w, lab.SeedFile) || sim.Prober.World != w || !slices.Equal(sim.Prober.Allow, []string{prober.LabAllow}) || sim.Prober.Live {
		t.Errorf("a world run: seeder import %q, prober world %q allow %v live %v", sim.Seeder.Import, sim.Prober.World, sim.Prober.Allow, sim.Prober.Live)
	}
	if sim.Prober.Hitrate != 0.001 {
		t.Errorf("min-probability %g, want --hitrate's when not given", sim.Prober.Hitrate)
	}
	live := parse(t, "--world", w, "--live", "--rate", "5", "--import", "/s.jsonl").resolved()
	want := LabLive
	want.Rate, want.Pfx2AS = 5, lab.WorldFile(w, lab.Pfx2ASFile)
	if live.Prober.LiveConfig != want || live.Prober.World != "" || live.Seeder.Import != "/s.jsonl" {
		t.Errorf("a live world run: %+v, world %q, import %q; want %+v", live.Prober.LiveConfig, live.Prober.World, live.Seeder.Import, want)
	}
	// Code that builds a Config gets the lab's settings whole.
	code := Config{World: w, Prober: prober.Config{LiveConfig: prober.LiveConfig{Live: true, Rate: 5}}}.resolved()
	if code.Prober.Rate != LabLive.Rate || code.Prober.Hitrate != predictor.DefaultHitrate || code.Quiet != time.Second {
		t.Errorf("a Config without flags: rate %g, min-probability %g, quiet %v", code.Prober.Rate, code.Prober.Hitrate, code.Quiet)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in the error; "" for none
	}{
		{[]string{"--world", "/w"}, ""},
		{[]string{"--world", "/w", "--hitrate", "2"}, "--hitrate 2"},
		{[]string{"--world", "/w", "--shards", "2"}, "shards"},
		{[]string{"--world", "/w", "--loss", "2"}, "loss"},
		{nil, "allow list is required"},
		{[]string{"--allow", "127.0.0.0/8"}, ""},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			err := parse(t, tc.args...).Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestOwnSeedConfig: --own-seed on a world imports no seed (the world's is
// gps-batch's), runs no seeder, makes the modeler plan nothing, and is
// refused with --cycles; without it the world's seed is imported as before.
func TestOwnSeedConfig(t *testing.T) {
	c := parse(t, "--world", "W", "--own-seed", "0.001", "--seed-max", "0.01").resolved()
	if c.seeds() || c.Seeder.Import != "" || !c.Modeler.NoPlan || c.Prober.Own.OwnSeed != 0.001 || c.Prober.Own.SeedMax != 0.01 {
		t.Errorf("--own-seed: seeder runs %v importing %q, modeler no-plan %v, prober own %+v", c.seeds(), c.Seeder.Import, c.Modeler.NoPlan, c.Prober.Own)
	}
	c = parse(t, "--world", "W").resolved()
	if !c.seeds() || c.Seeder.Import != lab.WorldFile("W", lab.SeedFile) || c.Modeler.NoPlan || c.Prober.Own.OwnSeed != 0 {
		t.Errorf("no --own-seed: seeder runs %v importing %q, modeler no-plan %v, own seed %v", c.seeds(), c.Seeder.Import, c.Modeler.NoPlan, c.Prober.Own.OwnSeed)
	}
	if err := parse(t, "--world", "W", "--own-seed", "0.001", "--cycles", "2").Validate(); err == nil || !strings.Contains(err.Error(), "--own-seed") {
		t.Errorf("--own-seed --cycles: %v, want refused", err)
	}
}
