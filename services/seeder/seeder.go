// Package seeder publishes the seed of a GPS run, the scan the model is
// first built from. It runs in one of two modes and then returns: the
// seeder's job is done once the seed is on the bus (Run returns nil; it does
// not wait for ctx to end as the long-running services do).
//
// Import (--import FILE): an existing seed scan, as GPS rows, LZR JSON lines
// or zgrab2 JSON output (gzip if the name ends in .gz), is validated whole
// first, so a bad line (reported as FILE:LINE) publishes nothing; then every
// service is published as a wire.Result of phase seed to gps.results.seed,
// in batches of up to wire.BatchResults results a message, in the file's
// order. A batch's Nats-Msg-Id is "seed:<ip>:<port>:<n>" of its first row,
// n counting the earlier rows of that (ip, port) in the file (0 for the
// first), then, for more than one result, ":<results>:<hash>" (the hash of
// its (ip, port)s): a re-run makes the same batches and is de-duplicated
// by the server, while a repeated row of the file is still delivered. Once
// every publish is acknowledged, the control record
// wire.SeedDone (results published, the highest RESULTS sequence they were
// stored at) is put at key "seed" of the control bucket: a consumer that has
// read up to LastSeq has the whole seed. A later run finds the record and
// does nothing unless --force is given (the server de-duplicates only within
// its window, 10 minutes by default).
//
// Sample (no --import): the seed is a random sample of the allowed addresses
// (round(--seed-frac x allowed), chosen by a full-cycle permutation as ZMap
// does) crossed with every port of --ports, published as batches of
// wire.Targets of phase seed to gps.targets.seed in a permuted order over
// (address, port) pairs (ZMap's shard.c), with the Nats-Msg-Id
// "seedt:<seed>:<batch#>" ("seedt:<seed>:<shard>/<shards>:<batch#>" when
// sharded). The allow list is required. The probers' results of those
// targets are the seed; the seeder cannot know when they are all in, so it
// writes no SeedDone in this mode: a seed-done marker for sampled seeds is
// future work.
package seeder

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/problems"
	"github.com/gpsscan/gps/pkg/telemetry"
)

// Formats of an imported seed.
const (
	FormatGPS    = "gps"    // GPS rows (pkg/row)
	FormatLZR    = "lzr"    // LZR's JSON lines
	FormatZGrab2 = "zgrab2" // zgrab2's JSON output
)

// Defaults of Config.
const (
	DefaultFormat   = FormatGPS
	DefaultSeedFrac = 0.01
	DefaultPorts    = "1-65535"
	DefaultBatch    = 1000
	// MaxBatch keeps a targets message well under NATS's 1 MB payload limit.
	MaxBatch = 20000
)

// ErrConfig is wrapped by every error of Config.Validate.
var ErrConfig = errors.New("bad seeder config")

// Config configures the seeder.
type Config struct {
	Import string // file to import as seed results; empty: sample mode
	Format string // format of Import: "gps" (default), "lzr", "zgrab2"
	Port   int    // zgrab2: port of the records that carry none (0: such a record is an error)
	Force  bool   // import even though the control record says a seed was imported

	Allow     []string // sample: allowed prefixes (each may be comma-separated)
	AllowFile string   // sample: file of allowed prefixes
	BlockFile string   // sample: file of blocked prefixes (the IANA ranges are always blocked)
	SeedFrac  float64  // sample: fraction of the allowed addresses in the seed
	Ports     string   // sample: ports, e.g. "1-65535" (default) or "22,80,443,8000-8100"
	Seed      int64    // sample: random seed of the permutations (0: a random one, logged)
	Shards    int      // sample: number of seeders splitting the targets (default 1)
	Shard     int      // sample: this seeder's shard, 0..Shards-1
	Batch     int      // targets per message (sample), results in flight (import); default 1000

	// Cycle, when set, runs the seeder forever in cycles of this length
	// (cycles.go); 0: one pass.
	Cycle time.Duration
	// CycleSeedFrac is the seed fraction of a cycle; 0: SeedFrac.
	CycleSeedFrac float64
	// World, in cycles, answers the seed's probes from a lab world's truth
	// at the current cycle; empty: the seed is published as targets.
	World string
}

// RegisterFlags registers the seeder's flags on fs with their defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Import, "import", "", "import this seed scan (gzip if .gz) instead of sampling targets")
	fs.StringVar(&c.Format, "format", DefaultFormat, "format of --import: gps (GPS rows), lzr (LZR JSON lines) or zgrab2 (zgrab2 JSON output)")
	fs.IntVar(&c.Port, "port", 0, "zgrab2: the port scanned, for records that carry none")
	fs.BoolVar(&c.Force, "force", false, "import even if a seed was already imported (the control record exists)")
	fs.Var((*listFlag)(&c.Allow), "allow", "sample: allowed prefix or address (repeatable, comma-separated); required unless --allow-file")
	fs.StringVar(&c.AllowFile, "allow-file", "", "sample: file of allowed prefixes, one a line, # comments")
	fs.StringVar(&c.BlockFile, "block-file", "", "sample: file of blocked prefixes (the IANA special-purpose ranges are always blocked)")
	fs.Float64Var(&c.SeedFrac, "seed-frac", DefaultSeedFrac, "sample: fraction of the allowed addresses to sample")
	fs.StringVar(&c.Ports, "ports", DefaultPorts, "sample: ports of every sampled address, e.g. 1-65535 or 22,80,8000-8100")
	fs.Int64Var(&c.Seed, "rand-seed", 0, "sample: seed of the random permutations (0: random, logged; sharded seeders must share one)")
	fs.IntVar(&c.Shards, "shards", 1, "sample: number of seeders splitting the targets")
	fs.IntVar(&c.Shard, "shard", 0, "sample: this seeder's shard (0..shards-1)")
	fs.IntVar(&c.Batch, "batch", DefaultBatch, "targets per message (sample), results in flight (import)")
	fs.DurationVar(&c.Cycle, "cycle", 0, "run forever in cycles of this length, each seeding afresh; SIGHUP begins the next cycle at once (0: one pass)")
	fs.Float64Var(&c.CycleSeedFrac, "cycle-seed-frac", 0, "with --cycle: fraction of the allowed addresses seeded each cycle (0: --seed-frac)")
	fs.StringVar(&c.World, "world", "", "with --cycle: answer each cycle's seed from this lab world's truth at that cycle, as a --world prober answers (lab runs); empty: publish the seed as targets")
}

// WithDefaults returns c with every zero field set to its default (for a
// Config built in code; RegisterFlags sets the same defaults).
func (c Config) WithDefaults() Config {
	c.Format = cmp.Or(c.Format, DefaultFormat)
	c.SeedFrac = cmp.Or(c.SeedFrac, DefaultSeedFrac)
	c.Ports = cmp.Or(c.Ports, DefaultPorts)
	c.Shards = cmp.Or(c.Shards, 1)
	c.Batch = cmp.Or(c.Batch, DefaultBatch)
	return c
}

// Validate checks c (zero fields taking their defaults); the error lists
// every problem.
func (c Config) Validate() error {
	c = c.WithDefaults()
	p := problems.New(ErrConfig)
	switch c.Format {
	case FormatGPS, FormatLZR, FormatZGrab2:
	default:
		p.Addf("--format %q: want gps, lzr or zgrab2", c.Format)
	}
	if c.Port < 0 || c.Port > 65535 {
		p.Addf("--port %d: want 0..65535", c.Port)
	}
	if c.Batch < 1 || c.Batch > MaxBatch {
		p.Addf("--batch %d: want 1..%d", c.Batch, MaxBatch)
	}
	if c.Shards < 1 || c.Shard < 0 || c.Shard >= c.Shards {
		p.Addf("--shard %d of --shards %d: want 0 <= shard < shards", c.Shard, c.Shards)
	}
	if c.Cycle < 0 || !(c.CycleSeedFrac >= 0 && c.CycleSeedFrac <= 1) {
		p.Addf("--cycle %v --cycle-seed-frac %v: want >= 0 and 0..1", c.Cycle, c.CycleSeedFrac)
	}
	if c.Cycle > 0 && (c.Shards != 1 || len(c.Allow) == 0 && c.AllowFile == "") {
		p.Addf("--cycle runs as one seeder with an allow list (--allow or --allow-file)")
	}
	if c.World != "" && c.Cycle == 0 {
		p.Addf("--world answers the seeds of --cycle runs: give --cycle")
	}
	if c.Import != "" && c.Cycle == 0 {
		if c.Shards != 1 {
			p.Addf("--import runs as one seeder: shards %d", c.Shards)
		}
		return p.Err()
	}
	if c.Format != DefaultFormat {
		p.Addf("--format %s needs --import", c.Format)
	}
	if len(c.Allow) == 0 && c.AllowFile == "" {
		p.Addf("an allow list is required to sample targets (--allow or --allow-file)")
	}
	if !(c.SeedFrac > 0 && c.SeedFrac <= 1) {
		p.Addf("--seed-frac %v: want 0 < f <= 1", c.SeedFrac)
	}
	if _, err := parsePorts(c.Ports); err != nil {
		p.Addf("%v", err)
	}
	if c.Shards > 1 && c.Seed == 0 {
		p.Addf("sharded seeders need a shared --rand-seed")
	}
	return p.Err()
}

// parsePorts parses "22,80,8000-8100" into distinct ports in the order given.
func parsePorts(s string) ([]uint16, error) {
	seen := make(map[uint16]bool)
	var out []uint16
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(strings.TrimSpace(hi))
		}
		if err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
			return nil, fmt.Errorf("ports %q: bad port or range %q (want 1..65535)", s, part)
		}
		for p := a; p <= b; p++ {
			if !seen[uint16(p)] {
				seen[uint16(p)] = true
				out = append(out, uint16(p))
			}
		}
	}
	return out, nil
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

// Stats counts what the seeder did; safe for concurrent reads.
type Stats struct {
	Rows       atomic.Uint64 // import: services read from the file
	Results    atomic.Uint64 // import: results acknowledged by the server
	Duplicates atomic.Uint64 // results and target batches the server already had (a re-run)
	Skipped    atomic.Uint64 // import: records that are no service (LZR acking firewalls, failed zgrab2 grabs)
	Targets    atomic.Uint64 // sample: targets published
	Messages   atomic.Uint64 // sample: target messages acknowledged
}

// Deps are what Run needs.
type Deps struct {
	Config Config
	Bus    *bus.Bus
	Log    *zap.Logger      // the caller names the service (With "service")
	Stats  *Stats           // optional
	Now    func() time.Time // optional clock; time.Now
	// Metrics are optional; the seeder publishes what the other services
	// count, so it only creates its series (Init).
	Metrics *telemetry.Metrics
	Ready   func() // optional: called once the streams are set up
	// NextCycle, with Config.Cycle, blocks until the cycle after cur may
	// begin; nil: until cur.Started + Config.Cycle. gps all --cycles
	// advances on its own signal.
	NextCycle func(ctx context.Context, cur bus.Cycle) error
	// Advance, with Config.Cycle and no NextCycle, begins the next cycle at
	// once on a receive, before cur.Started + Config.Cycle (gps seeder
	// sends one on SIGHUP); nil: only the timer.
	Advance <-chan struct{}
}

func (d *Deps) fill() {
	d.Config = d.Config.WithDefaults()
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	if d.Stats == nil {
		d.Stats = new(Stats)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Metrics != nil {
		d.Metrics.Init(Service)
	}
}

// Service is the seeder's name in metrics and logs.
const Service = "seeder"
