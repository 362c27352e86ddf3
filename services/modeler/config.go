package modeler

import (
	"cmp"
	"errors"
	"flag"
	"fmt"

	"github.com/gpsscan/gps/internal/resultpipe"
	"github.com/gpsscan/gps/pkg/gps"
)

// Defaults of the Config.
const (
	DefaultHitrate   = gps.DefaultHitrate
	DefaultStep      = gps.DefaultStep
	DefaultPlanBatch = 256
)

// Config is the modeler's configuration. Zero fields take their defaults
// (WithDefaults).
type Config struct {
	Hitrate       float64 // GPS hitrate threshold of rules and plan groups
	Step          int     // plan prefix length (/step)
	PlanBatch     int     // plan groups (prefix sweeps) per targets message
	NoExtraSweeps bool    // publish GPS's plan groups only, without streaming GPS's extra sweeps
	// SeedFrac is the fraction of addresses the seed scanned on every
	// port: a sweep's prior yield is its seed count over the seed's
	// addresses in it (SeedFrac times its size). 0: unknown, and the
	// targets carry the count alone (the prober takes count / size).
	SeedFrac float64
	// NoPlan makes no plan: the prober's own seed (its --own-seed) sweeps
	// what it learns, so the modeler only models RESULTS and waits for no
	// seed.
	NoPlan                    bool
	resultpipe.ConsumerConfig // snapshots and pull size
}

// RegisterFlags registers the configuration flags on fs, with the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&c.Hitrate, "hitrate", DefaultHitrate, "minimum hitrate of a rule and of a plan group (count / prefix size)")
	fs.IntVar(&c.Step, "step", DefaultStep, "prefix length of a priors plan group (/step)")
	fs.IntVar(&c.PlanBatch, "plan-batch", DefaultPlanBatch, "plan groups (prefix sweeps) per targets message")
	fs.BoolVar(&c.NoExtraSweeps, "no-extra-sweeps", false, "publish GPS's plan groups only, without the extra sweeps for seed services the model cannot predict")
	fs.Float64Var(&c.SeedFrac, "sweep-prior-frac", 0, "fraction of the address space the seed scanned on every port (0 < f <= 1): each sweep's prior yield for the prober is its seed count over the seed's addresses in it; 0: unknown (count / prefix size)")
	fs.BoolVar(&c.NoPlan, "no-plan", false, "make no priors plan and wait for no seed: model the results only (for a prober that takes its own seed, --own-seed)")
	c.ConsumerConfig.RegisterFlags(fs)
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.Hitrate = cmp.Or(c.Hitrate, DefaultHitrate)
	c.Step = cmp.Or(c.Step, DefaultStep)
	c.PlanBatch = cmp.Or(c.PlanBatch, DefaultPlanBatch)
	c.ConsumerConfig = c.ConsumerConfig.WithDefaults()
	return c
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid modeler config")

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case !(c.Hitrate >= 0 && c.Hitrate < 1): // NaN fails every comparison
		return fmt.Errorf("%w: --hitrate %g: want 0 <= hitrate < 1", ErrConfig, c.Hitrate)
	case c.Step < 1 || c.Step > 32:
		return fmt.Errorf("%w: --step %d: want 1..32", ErrConfig, c.Step)
	case c.PlanBatch < 1:
		return fmt.Errorf("%w: --plan-batch %d: want at least 1", ErrConfig, c.PlanBatch)
	case !(c.SeedFrac >= 0 && c.SeedFrac <= 1):
		return fmt.Errorf("%w: --sweep-prior-frac %g: want 0 <= f <= 1", ErrConfig, c.SeedFrac)
	}
	if err := c.ConsumerConfig.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}
