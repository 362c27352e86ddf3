package modeler

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/gpsscan/gps/pkg/batch"
)

// Defaults of the Config.
const (
	DefaultHitrate          = batch.DefaultHitrate
	DefaultStep             = batch.DefaultStep
	DefaultSnapshotEvery    = 50000
	DefaultSnapshotInterval = 30 * time.Second
	DefaultPlanBatch        = 256
	DefaultFetch            = 1000
)

// Config is the modeler's configuration. Zero fields take their defaults
// (WithDefaults).
type Config struct {
	Hitrate          float64       // GPS hitrate threshold of rules and plan groups
	Step             int           // plan prefix length (/step)
	SnapshotEvery    int           // results applied between snapshots
	SnapshotInterval time.Duration // at most this long between snapshots (when changed)
	PlanBatch        int           // plan groups (prefix sweeps) per targets message
	NoExtraSweeps    bool          // publish GPS's plan groups only, without streaming GPS's extra sweeps
	Fetch            int           // results per pull request (twice this are kept in flight)
}

// RegisterFlags registers the configuration flags on fs, with the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&c.Hitrate, "hitrate", DefaultHitrate, "minimum hitrate of a rule and of a plan group (count / prefix size)")
	fs.IntVar(&c.Step, "step", DefaultStep, "prefix length of a priors plan group (/step)")
	fs.IntVar(&c.SnapshotEvery, "snapshot-every", DefaultSnapshotEvery, "results applied between model snapshots")
	fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", DefaultSnapshotInterval, "longest time between model snapshots (when the model changed)")
	fs.IntVar(&c.PlanBatch, "plan-batch", DefaultPlanBatch, "plan groups (prefix sweeps) per targets message")
	fs.BoolVar(&c.NoExtraSweeps, "no-extra-sweeps", false, "publish GPS's plan groups only, without the extra sweeps for seed services the model cannot predict")
	fs.IntVar(&c.Fetch, "fetch", DefaultFetch, "results per pull request on RESULTS (twice this are kept in flight)")
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Hitrate == 0 {
		c.Hitrate = DefaultHitrate
	}
	if c.Step == 0 {
		c.Step = DefaultStep
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = DefaultSnapshotEvery
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.PlanBatch == 0 {
		c.PlanBatch = DefaultPlanBatch
	}
	if c.Fetch == 0 {
		c.Fetch = DefaultFetch
	}
	return c
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid modeler config")

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Hitrate < 0 || c.Hitrate >= 1:
		return fmt.Errorf("%w: --hitrate %g: want 0 <= hitrate < 1", ErrConfig, c.Hitrate)
	case c.Step < 1 || c.Step > 32:
		return fmt.Errorf("%w: --step %d: want 1..32", ErrConfig, c.Step)
	case c.SnapshotEvery < 1:
		return fmt.Errorf("%w: --snapshot-every %d: want at least 1", ErrConfig, c.SnapshotEvery)
	case c.SnapshotInterval <= 0:
		return fmt.Errorf("%w: --snapshot-interval %v: want more than 0", ErrConfig, c.SnapshotInterval)
	case c.PlanBatch < 1:
		return fmt.Errorf("%w: --plan-batch %d: want at least 1", ErrConfig, c.PlanBatch)
	case c.Fetch < 1 || c.Fetch > 10000:
		return fmt.Errorf("%w: --fetch %d: want 1..10000", ErrConfig, c.Fetch)
	}
	return nil
}
