package resultpipe

import (
	"cmp"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/gpsscan/gps/pkg/ipv4"
)

// Defaults of the ConsumerConfig.
const (
	DefaultSnapshotEvery    = 50000
	DefaultSnapshotInterval = 30 * time.Second
	DefaultFetch            = 1000
	// DefaultAllow is the allow list without --allow or --allow-file: the
	// lab, as the prober's with --world (prober.LabAllow).
	DefaultAllow = "127.0.0.0/8"
)

// ConsumerConfig is the configuration every results consumer has: how
// often it snapshots and how much it pulls at a time. Zero fields take their
// defaults (WithDefaults).
type ConsumerConfig struct {
	SnapshotEvery    int           // results applied between snapshots
	SnapshotInterval time.Duration // at most this long between snapshots (when changed)
	Fetch            int           // results per pull request (twice this are kept in flight)
	// The scan policy, as the prober's: a message with a result outside it
	// is dead-lettered whole, so nothing outside is modeled or predicted.
	Allow     []string // allowed prefixes (each may be comma-separated); none and no AllowFile: DefaultAllow
	AllowFile string   // file of allowed prefixes
	BlockFile string   // file of blocked prefixes (the IANA ranges are always blocked)
}

// RegisterFlags registers the flags on fs, with the defaults.
func (c *ConsumerConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.SnapshotEvery, "snapshot-every", DefaultSnapshotEvery, "results applied between snapshots")
	fs.DurationVar(&c.SnapshotInterval, "snapshot-interval", DefaultSnapshotInterval, "longest time between snapshots (when anything changed)")
	fs.IntVar(&c.Fetch, "fetch", DefaultFetch, "results per pull request on RESULTS (twice this are kept in flight)")
	fs.Var((*listFlag)(&c.Allow), "allow", "allowed prefix or address (repeatable, comma-separated), as the prober's: a result outside is dead-lettered; default "+DefaultAllow+" unless --allow-file")
	fs.StringVar(&c.AllowFile, "allow-file", "", "file of allowed prefixes, one a line, # comments (the prober's list)")
	fs.StringVar(&c.BlockFile, "block-file", "", "file of blocked prefixes (the IANA special-purpose ranges are always blocked)")
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// Consumer returns c: the services' Configs, which embed it, have it too
// (Config).
func (c ConsumerConfig) Consumer() ConsumerConfig { return c }

// Policy loads the scan policy of the allow and block lists.
func (c ConsumerConfig) Policy() (*ipv4.Policy, error) {
	c = c.WithDefaults()
	return ipv4.LoadPolicy(c.Allow, c.AllowFile, c.BlockFile)
}

// WithDefaults returns c with every zero field set to its default.
func (c ConsumerConfig) WithDefaults() ConsumerConfig {
	c.SnapshotEvery = cmp.Or(c.SnapshotEvery, DefaultSnapshotEvery)
	c.SnapshotInterval = cmp.Or(c.SnapshotInterval, DefaultSnapshotInterval)
	c.Fetch = cmp.Or(c.Fetch, DefaultFetch)
	if len(c.Allow) == 0 && c.AllowFile == "" {
		c.Allow = []string{DefaultAllow}
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
	if _, err := c.Policy(); err != nil {
		return fmt.Errorf("--allow, --allow-file, --block-file: %w", err)
	}
	return nil
}
