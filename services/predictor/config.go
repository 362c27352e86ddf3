package predictor

import (
	"cmp"
	"errors"
	"flag"
	"fmt"

	"github.com/gpsscan/gps/internal/resultpipe"
	"github.com/gpsscan/gps/pkg/gps"
)

// Defaults of the Config.
const DefaultHitrate = gps.DefaultHitrate

// Config is the predictor's configuration. Zero fields take their defaults
// (WithDefaults).
type Config struct {
	Hitrate                   float64 // a rule predicts when its hitrate exceeds this
	resultpipe.ConsumerConfig         // snapshots and pull size
}

// RegisterFlags registers the configuration flags on fs, with the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.Float64Var(&c.Hitrate, "hitrate", DefaultHitrate, "minimum hitrate of a rule that predicts a service")
	c.ConsumerConfig.RegisterFlags(fs)
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.Hitrate = cmp.Or(c.Hitrate, DefaultHitrate)
	c.ConsumerConfig = c.ConsumerConfig.WithDefaults()
	return c
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid predictor config")

// Validate checks the configuration.
func (c Config) Validate() error {
	if !(c.Hitrate >= 0 && c.Hitrate < 1) { // NaN fails every comparison
		return fmt.Errorf("%w: --hitrate %g: want 0 <= hitrate < 1", ErrConfig, c.Hitrate)
	}
	if err := c.ConsumerConfig.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}
