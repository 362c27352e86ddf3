package resultpipe

import (
	"flag"
	"fmt"
	"time"
)

// Defaults of the ConsumerConfig.
const (
	DefaultSnapshotEvery    = 50000
	DefaultSnapshotInterval = 30 * time.Second
	DefaultFetch            = 1000
)

// ConsumerConfig is the configuration every results consumer has: how
// often it snapshots and how much it pulls at a time. Zero fields take their
// defaults (WithDefaults).
type ConsumerConfig struct {
	SnapshotEvery    int           // results applied between snapshots
	SnapshotInterval time.Duration // at most this long between snapshots (when changed)
	Fetch            int           // results per pull request (twice this are kept in flight)
}

// RegisterFlags registers the flags on fs, with the defaults.
func (c *ConsumerConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.SnapshotEvery, "snapshot-every", DefaultSnapshotEvery, "results applied between snapshots")
	fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", DefaultSnapshotInterval, "longest time between snapshots (when anything changed)")
	fs.IntVar(&c.Fetch, "fetch", DefaultFetch, "results per pull request on RESULTS (twice this are kept in flight)")
}

// WithDefaults returns c with every zero field set to its default.
func (c ConsumerConfig) WithDefaults() ConsumerConfig {
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

// Validate checks the configuration; the services wrap its errors in their
// own sentinels.
func (c ConsumerConfig) Validate() error {
	switch {
	case c.SnapshotEvery < 1:
		return fmt.Errorf("--snapshot-every %d: want at least 1", c.SnapshotEvery)
	case c.SnapshotInterval <= 0:
		return fmt.Errorf("--snapshot-interval %v: want more than 0", c.SnapshotInterval)
	case c.Fetch < 1 || c.Fetch > 10000:
		return fmt.Errorf("--fetch %d: want 1..10000", c.Fetch)
	}
	return nil
}
