package all

import (
	"cmp"
	"errors"
	"flag"
	"time"

	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/services/inventory"
	"github.com/gpsscan/gps/services/modeler"
	"github.com/gpsscan/gps/services/predictor"
	"github.com/gpsscan/gps/services/prober"
	"github.com/gpsscan/gps/services/seeder"
)

// DefaultQuiet is the default of Config.Quiet.
const DefaultQuiet = time.Second

// Config configures the whole pipeline: a world to run on, and each
// service's own configuration, as `gps <service>` takes it.
//
// A world directory is what the services would be told one by one: the
// seeder imports its seed.jsonl (unless Seeder.Import names another seed),
// and the prober answers from its truth.jsonl or, with Prober.Live, probes
// the world served as real listeners on 127.0.0.0/8, with the lab's tuning
// (LabLive), its pfx2as.tsv and the allow list 127.0.0.0/8 for whatever the
// command line does not set. With Prober.Own.OwnSeed (--own-seed) the
// prober takes its own seed of the world's /16s instead (ownSeed). Unless
// --min-probability is given, the prober drops the predictions at or below
// the predictor's hitrate.
type Config struct {
	World string // a world directory to run on to the end (see above); empty: run until stopped
	// Out, with a world, is where the run writes summary.json, curves.csv
	// and coverage.png as gps eval does: the pipeline's curve, read from
	// RESULTS, beside the replay's policies on the same world and
	// parameters. Empty: none.
	Out string
	// Cycles, with a world with cycles, runs the pipeline over cycles
	// 0..Cycles of the world (cycles.go); 0: one pass.
	Cycles    int
	Quiet     time.Duration // how long every queue must stay empty before a world run counts as done; 0: 1s
	Seeder    seeder.Config
	Modeler   modeler.Config
	Predictor predictor.Config
	Prober    prober.Config
	Inventory inventory.Config
	flags     *flag.FlagSet // where RegisterFlags registered: the flags given there win over the world's settings
}

// RegisterFlags registers the flags of `gps all` on fs: --world and --quiet,
// and every flag of the four services, each registered by the service's own
// RegisterFlags, with its name and default. A name that several services
// have is one flag that sets each of them: --hitrate (modeler, predictor),
// --snapshot-every, --snapshot-interval and --fetch (modeler, predictor),
// --allow, --allow-file and --block-file (seeder, modeler, predictor,
// prober), --step (modeler, prober); their defaults agree. --world and --live, which the prober has too, set the prober's and
// mean more here (Config).
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.flags = fs
	own := flag.NewFlagSet("all", flag.ContinueOnError)
	own.StringVar(&c.World, "world", "", "")
	own.StringVar(&c.Out, "out", "", "with --world: write summary.json, curves.csv and coverage.png as gps eval does, with the running pipeline's curve (policy \"pipeline\", from the probe counts on RESULTS) beside the replay's policies")
	own.IntVar(&c.Cycles, "cycles", 0, "with --world: run cycles 0..N of the world (the seeder in cycles, cycle k of the world served in cycle k), one summary line a cycle, and with --out cycles.csv")
	own.DurationVar(&c.Quiet, "quiet", DefaultQuiet, "how long the queues must stay empty before a world run is done")
	sets := []*flag.FlagSet{own, flagSet(c.Seeder.RegisterFlags), flagSet(c.Modeler.RegisterFlags), flagSet(c.Predictor.RegisterFlags), flagSet(c.Prober.RegisterFlags), flagSet(c.Inventory.RegisterFlags)}
	merged := map[string]*fanout{}
	var names []string
	for _, s := range sets {
		s.VisitAll(func(f *flag.Flag) {
			m := merged[f.Name]
			if m == nil {
				m = &fanout{usage: cmp.Or(usage(f.Name), f.Usage)}
				merged[f.Name] = m
				names = append(names, f.Name)
			}
			m.values = append(m.values, f.Value)
		})
	}
	for _, name := range names {
		m := merged[name]
		if len(m.values) == 1 {
			fs.Var(m.values[0], name, m.usage) // keeps its type in -h
			continue
		}
		fs.Var(m, name, m.usage)
	}
}

// usage is the usage of a flag whose meaning in gps all is more than one
// service's ("" for the others); a `word` names its value in -h.
func usage(name string) string {
	switch name {
	case "world":
		return "world `directory`: import DIR/seed.jsonl as the seed (unless --import or --own-seed) and answer probes from DIR/truth.jsonl; the run ends when the pipeline is idle"
	case "live":
		return "probe for real (the allow list applies); with --world: serve the world as real TCP listeners on its 127.0.0.0/8 addresses and probe them, with the lab's settings for --rate, --probe-concurrency, --timeout, --banner-wait, --retries, --keep-empty and --pfx2as unless given"
	case "hitrate":
		return "minimum `hitrate` of a rule, of a plan group (count / prefix size) and of a prediction (modeler and predictor)"
	case "allow":
		return "allowed `prefix` or address (repeatable, comma-separated) of the seeder's sample, the prober's probes and the results the modeler and predictor take; required unless --world (127.0.0.0/8)"
	case "allow-file":
		return "`file` of allowed prefixes, one a line, # comments (seeder, modeler, predictor and prober)"
	case "block-file":
		return "`file` of blocked prefixes (seeder, modeler, predictor and prober; the IANA special-purpose ranges are always blocked)"
	case "step":
		return "prefix `length` of the plan groups (modeler); the prober refuses sweeps of shorter prefixes"
	case "snapshot-every":
		return "`results` applied between snapshots (modeler and predictor)"
	case "snapshot-interval":
		return "longest `time` between snapshots when anything changed (modeler and predictor)"
	case "fetch":
		return "`results` per pull request on RESULTS, twice this kept in flight (modeler and predictor)"
	}
	return ""
}

// flagSet is a scratch flag set with the flags of one service.
func flagSet(register func(*flag.FlagSet)) *flag.FlagSet {
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	register(fs)
	return fs
}

// fanout is one flag that sets the flag of the same name of several
// services.
type fanout struct {
	usage  string
	values []flag.Value
}

func (f *fanout) String() string {
	if f == nil || len(f.values) == 0 {
		return "" // the zero value flag.PrintDefaults asks
	}
	return f.values[0].String()
}

func (f *fanout) Set(s string) error {
	for _, v := range f.values {
		if err := v.Set(s); err != nil {
			return err
		}
	}
	return nil
}

// IsBoolFlag lets a boolean flag go without a value (--live).
func (f *fanout) IsBoolFlag() bool {
	b, ok := f.values[0].(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// given reports whether the flag name was set on the command line.
func (c Config) given(name string) bool {
	found := false
	if c.flags != nil {
		c.flags.Visit(func(f *flag.Flag) { found = found || f.Name == name })
	}
	return found
}

// seeds reports whether the seeder runs: on a world (unless the prober
// takes its own seed), or with a seed to import or an allow list to sample.
func (c Config) seeds() bool {
	return c.World != "" && !c.ownSeed() || c.Seeder.Import != "" || len(c.Seeder.Allow) > 0 || c.Seeder.AllowFile != ""
}

// ownSeed reports whether the prober takes its own seed (--own-seed): then
// no fixed seed is imported (a world's seed.jsonl is gps-batch's), the
// modeler makes no plan, and the prober's policy sweeps what it learns.
func (c Config) ownSeed() bool { return c.Prober.Own.OwnSeed > 0 }

// resolved is c with what the world means for each service filled in
// (Config), and the services' defaults.
func (c Config) resolved() Config {
	if c.Quiet == 0 {
		c.Quiet = DefaultQuiet
	}
	c.Modeler = c.Modeler.WithDefaults()
	c.Predictor = c.Predictor.WithDefaults()
	c.Inventory = c.Inventory.WithDefaults()
	if c.Prober.Step == 0 {
		c.Prober.Step = c.Modeler.Step // the prober refuses sweeps larger than the modeler's plan groups
	}
	if !c.given("min-probability") {
		c.Prober.Hitrate = c.Predictor.Hitrate
	}
	if c.World != "" && !c.given("sweep-prior-frac") {
		// The world says what fraction its seed scanned: the sweeps'
		// priors are then what gps eval's replay gives them. A world
		// without it fails where it is loaded.
		if m, err := lab.ReadMeta(c.World); err == nil {
			if f, ok := m.Params["seed_frac"].(float64); ok && f > 0 && f <= 1 {
				c.Modeler.SeedFrac = f
			}
		}
	}
	if c.ownSeed() {
		c.Modeler.NoPlan = true
	}
	if c.World != "" && c.Seeder.Import == "" && !c.ownSeed() {
		c.Seeder.Import = lab.WorldFile(c.World, lab.SeedFile)
	}
	if c.Cycles == 0 {
		// --world names the world of every service; the seeder answers
		// from it only in cycles (cycleSeeder).
		c.Seeder.World = ""
	}
	c.Seeder = c.Seeder.WithDefaults()
	switch {
	case c.World != "" && c.Prober.Live:
		c.Prober.World = "" // the answers come from the network
		c.Prober.LiveConfig = labLive(c.Prober.LiveConfig, c.given)
		if !c.given("pfx2as") {
			c.Prober.Pfx2AS = lab.WorldFile(c.World, lab.Pfx2ASFile)
		}
		if len(c.Prober.Allow) == 0 && c.Prober.AllowFile == "" {
			c.Prober.Allow = []string{prober.LabAllow}
		}
	case c.World != "":
		c.Prober.World = c.World
	}
	if c.World != "" && !c.given("await-predictions") {
		// A world run, simulated or on the served lab, keeps the prober in
		// lockstep with the predictor, as the replay it is compared with.
		c.Prober.AwaitPredictions = prober.DefaultAwaitPredictions
	}
	c.Prober = c.Prober.WithDefaults()
	return c
}

// labLive is the live configuration l on the served lab: LabLive's, but for
// the flags given and an engine chosen.
func labLive(l prober.LiveConfig, given func(string) bool) prober.LiveConfig {
	out := LabLive
	out.Engine = cmp.Or(l.Engine, LabLive.Engine)
	for name, keep := range map[string]func(){
		"rate":              func() { out.Rate = l.Rate },
		"probe-concurrency": func() { out.ProbeConcurrency = l.ProbeConcurrency },
		"timeout":           func() { out.Timeout = l.Timeout },
		"banner-wait":       func() { out.BannerWait = l.BannerWait },
		"retries":           func() { out.Retries = l.Retries },
		"keep-empty":        func() { out.KeepEmpty = l.KeepEmpty },
	} {
		if given(name) {
			keep()
		}
	}
	out.Pfx2AS = l.Pfx2AS
	return out
}

// Validate checks the configuration of each service that runs; the error
// lists every problem.
func (c Config) Validate() error {
	r := c.resolved()
	var errs []error
	if r.Quiet < 0 {
		errs = append(errs, errors.New("--quiet: want 0 or more"))
	}
	if r.Out != "" && r.World == "" {
		errs = append(errs, errors.New("--out: needs --world (the curve is measured against the world's truth)"))
	}
	if r.seeds() {
		errs = append(errs, r.Seeder.Validate())
	}
	if r.ownSeed() && r.Cycles > 0 {
		errs = append(errs, errors.New("--own-seed: not with --cycles (the own seed runs one pass)"))
	}
	errs = append(errs, r.Modeler.Validate(), r.Predictor.Validate(), r.Prober.Validate(), r.Inventory.Validate())
	return errors.Join(errs...)
}
