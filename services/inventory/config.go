package inventory

import (
	"errors"
	"flag"
	"fmt"

	"github.com/gpsscan/gps/internal/resultpipe"
)

// Config is the inventory's configuration: how it consumes RESULTS and the
// scan policy (the modeler's). It keeps no snapshot (its state is the
// bucket), so the snapshot settings are not its flags.
type Config struct {
	resultpipe.ConsumerConfig
}

// RegisterFlags registers the flags on fs, with the defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	all := flag.NewFlagSet("", flag.ContinueOnError)
	c.ConsumerConfig.RegisterFlags(all)
	for _, name := range []string{"fetch", "allow", "allow-file", "block-file"} {
		f := all.Lookup(name)
		fs.Var(f.Value, f.Name, f.Usage)
	}
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.ConsumerConfig = c.ConsumerConfig.WithDefaults()
	return c
}

// ErrConfig is wrapped by every configuration error.
var ErrConfig = errors.New("invalid inventory config")

// Validate checks the configuration.
func (c Config) Validate() error {
	if err := c.ConsumerConfig.WithDefaults().Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}
