package predictor

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
	DefaultSnapshotEvery    = 50000
	DefaultSnapshotInterval = 30 * time.Second
	DefaultFetch            = 1000
)

// Config is the predictor's configuration. Zero fields take their defaults
// (WithDefaults).
type Config struct {
	Hitrate          float64       // a rule predicts when its hitrate exceeds this
	SnapshotEvery    int           // results applied between snapshots
	SnapshotInterval time.Duration // at most this long between snapshots (when changed)
	Fetch            int           // results per pull request (twice this are kept in flight)
}

// RegisterFlags registers the configuration flags on fs, with the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&c.Hitrate, "hitrate", DefaultHitrate, "minimum hitrate of a rule that predicts a service")
	fs.IntVar(&c.SnapshotEvery, "snapshot-every", DefaultSnapshotEvery, "results applied between snapshots")
	fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", DefaultSnapshotInterval, "longest time between snapshots (when anything changed)")
	fs.IntVar(&c.Fetch, "fetch", DefaultFetch, "results per pull request on RESULTS (twice this are kept in flight)")
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Hitrate == 0 {
		c.Hitrate = DefaultHitrate
	}
	if c.SnapshotEvery == 0 {
		c.SnapshotEvery = DefaultSnapshotEvery
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = DefaultSnapshotInterval
	}
	if c.Fetch == 0 {
		c.Fetch = DefaultFetch
	}
	return c
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid predictor config")

// Validate checks the configuration.
func (c Config) Validate() error {
	switch {
	case c.Hitrate < 0 || c.Hitrate >= 1:
		return fmt.Errorf("%w: --hitrate %g: want 0 <= hitrate < 1", ErrConfig, c.Hitrate)
	case c.SnapshotEvery < 1:
		return fmt.Errorf("%w: --snapshot-every %d: want at least 1", ErrConfig, c.SnapshotEvery)
	case c.SnapshotInterval <= 0:
		return fmt.Errorf("%w: --snapshot-interval %v: want more than 0", ErrConfig, c.SnapshotInterval)
	case c.Fetch < 1 || c.Fetch > 10000:
		return fmt.Errorf("%w: --fetch %d: want 1..10000", ErrConfig, c.Fetch)
	}
	return nil
}
