// Package scanbench benchmarks gps's SYN scanner (netprobe.SYNScan) against
// ZMap and masscan on the same targets in one run: packets per second and
// hit rate (open ports found / open ports that exist) at the same rate caps.
//
// Scan safety: nothing is sent outside two network namespaces the benchmark
// creates and removes. The scanner namespace holds one end of a veth pair
// (198.18.0.1/30); the target namespace holds the other (198.18.0.2/30) and
// makes 198.19.0.0/16 local (an AnyIP route on lo), so every address there
// answers: RST where closed, SYN-ACK where one of the benchmark's listeners
// is bound (a known, seeded subset: the hit rate is exact). Targets are
// always a prefix of 198.19.0.0/16, inside the benchmarking range
// 198.18.0.0/15; the scanners run in the scanner namespace (ip netns exec),
// whose only routes lead to the target namespace. Namespaces, links and
// listeners are removed at the end, on errors and on Ctrl-C.
//
// It needs root (namespaces, raw sockets) and the ip command; a scanner
// whose binary is missing (apt-get install -y zmap masscan) is skipped with
// a message. It is a command run by hand (gps bench scanners), not a test.
package scanbench

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/problems"
)

// Scanners.
const (
	ScannerGPS     = "gps"
	ScannerZMap    = "zmap"
	ScannerMasscan = "masscan"
)

// Defaults of Config.
const (
	DefaultTargets  = 65536
	DefaultOpen     = 2048
	DefaultPort     = 80
	DefaultRuns     = 3
	DefaultCooldown = 2 * time.Second
	// DefaultBatch is gps's SYNs per sendmmsg and rate limiter burst here:
	// at 100K packets per second a burst of 256 is 2.6 ms, long enough that
	// the sender's wake-ups (timer slack on a shared VM) do not eat into the
	// rate; netprobe's default of 64 reaches ~80% of a 100K cap here.
	DefaultBatch = 256
)

// DefaultRates are the rate caps measured by default: 100K packets per
// second, and unlimited (0).
var DefaultRates = []float64{100000, 0}

// The addresses of the benchmark's namespaces.
var (
	TargetSpace = ipv4.MustParsePrefix("198.19.0.0/16") // targets are a prefix of it
	benchRange  = ipv4.MustParsePrefix("198.18.0.0/15")
	scanAddr    = "198.18.0.1"
	targetAddr  = "198.18.0.2"
)

// Sentinels.
var (
	ErrConfig  = errors.New("bad scanbench config")
	ErrNotRoot = errors.New("scanbench needs root (network namespaces, raw sockets)")
	ErrNoIP    = errors.New("scanbench needs the ip command (iproute2)")
)

// Config shapes a benchmark; zero fields take defaults.
type Config struct {
	Targets  int           // addresses scanned, a power of two in 256..65536, from 198.19.0.0
	Open     int           // of which have a listener on Port
	Port     uint16        // the port scanned
	Rates    []float64     // rate caps in packets per second; 0: unlimited
	Runs     int           // runs of each scanner at each rate (the median is reported)
	Cooldown time.Duration // how long each scanner waits for replies after its last SYN (whole seconds for zmap and masscan)
	Batch    int           // gps: SYNs per sendmmsg and rate limiter burst; 0: DefaultBatch
	Scanners []string      // which of gps, zmap, masscan; empty: all
	Seed     uint64        // picks the open addresses
	Self     []string      // the command that runs this binary's scanbench helper (RunHelper)
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	c.Targets = cmp.Or(c.Targets, DefaultTargets)
	c.Open = cmp.Or(c.Open, min(DefaultOpen, c.Targets/2))
	c.Port = cmp.Or(c.Port, DefaultPort)
	if len(c.Rates) == 0 {
		c.Rates = slices.Clone(DefaultRates)
	}
	c.Runs = cmp.Or(c.Runs, DefaultRuns)
	c.Cooldown = cmp.Or(c.Cooldown, DefaultCooldown)
	if len(c.Scanners) == 0 {
		c.Scanners = []string{ScannerGPS, ScannerZMap, ScannerMasscan}
	}
	c.Seed = cmp.Or(c.Seed, 1)
	c.Batch = cmp.Or(c.Batch, DefaultBatch)
	return c
}

// Validate checks c after defaults; the error lists every problem.
func (c Config) Validate() error {
	c = c.WithDefaults()
	p := problems.New(ErrConfig)
	if c.Targets < 256 || c.Targets > int(TargetSpace.Size()) || bits.OnesCount(uint(c.Targets)) != 1 {
		p.Addf("targets %d must be a power of two in 256..65536", c.Targets)
	}
	if c.Open < 1 || c.Open > c.Targets || c.Open > 16384 {
		p.Addf("open %d must be in 1..min(targets, 16384)", c.Open)
	}
	for _, r := range c.Rates {
		if r < 0 {
			p.Addf("rate %g must not be negative (0 is unlimited)", r)
		}
	}
	if c.Runs < 1 {
		p.Addf("runs %d must be at least 1", c.Runs)
	}
	if c.Cooldown < 0 {
		p.Addf("cooldown %v must not be negative", c.Cooldown)
	}
	if c.Batch < 0 {
		p.Addf("batch %d must not be negative", c.Batch)
	}
	for _, s := range c.Scanners {
		switch s {
		case ScannerGPS, ScannerZMap, ScannerMasscan:
		default:
			p.Addf("unknown scanner %q (want gps, zmap or masscan)", s)
		}
	}
	if slices.Contains(c.Scanners, ScannerGPS) && len(c.Self) == 0 {
		p.Addf("the gps scanner needs Self (the helper command)")
	}
	return p.Err()
}

// Prefix is the scanned prefix: the first Targets addresses of 198.19.0.0/16.
func (c Config) Prefix() ipv4.Prefix {
	return ipv4.Prefix{Addr: TargetSpace.First(), Bits: 32 - bits.TrailingZeros(uint(c.Targets))}
}

// OpenAddrs are the addresses of the prefix that get a listener: Open of
// them, picked with Seed, in ascending order.
func (c Config) OpenAddrs() []uint32 {
	pr := c.Prefix()
	r := rand.New(rand.NewPCG(c.Seed, 0x5ca2be2c4))
	idx := r.Perm(c.Targets)[:c.Open]
	out := make([]uint32, len(idx))
	for i, k := range idx {
		out[i] = pr.First() + uint32(k)
	}
	slices.Sort(out)
	return out
}

// Sample is one run of one scanner.
type Sample struct {
	Sent    uint64  `json:"sent"`     // SYNs sent
	PPS     float64 `json:"pps"`      // packets per second of the send phase
	Found   int     `json:"found"`    // open addresses reported that are open
	False   int     `json:"false"`    // addresses reported open that are not
	HitRate float64 `json:"hit_rate"` // Found / open addresses
	Seconds float64 `json:"seconds"`  // wall time of the run, start to exit
}

// Result is one scanner at one rate cap.
type Result struct {
	Scanner string   `json:"scanner"`
	Rate    float64  `json:"rate"` // the cap; 0: unlimited
	Samples []Sample `json:"samples"`
	PPS     float64  `json:"median_pps"`
	HitRate float64  `json:"median_hit_rate"`
	Skipped string   `json:"skipped,omitempty"` // why it did not run
}

// Ratio compares gps with ZMap at one rate cap.
type Ratio struct {
	Rate        float64 `json:"rate"`
	PPS         float64 `json:"pps_ratio"` // gps median pps / zmap median pps
	GPSHitRate  float64 `json:"gps_hit_rate"`
	ZMapHitRate float64 `json:"zmap_hit_rate"`
}

// Report is the outcome of Run.
type Report struct {
	Targets  int       `json:"targets"`
	Open     int       `json:"open"`
	Port     uint16    `json:"port"`
	Prefix   string    `json:"prefix"`
	Runs     int       `json:"runs"`
	Cooldown string    `json:"cooldown"`
	Machine  string    `json:"machine"`
	Start    time.Time `json:"start"`
	Results  []Result  `json:"results"`
	Ratios   []Ratio   `json:"gps_vs_zmap"`
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarise sets the medians of r and the gps/zmap ratios of rep.
func (rep *Report) summarise() {
	for i := range rep.Results {
		r := &rep.Results[i]
		var pps, hit []float64
		for _, s := range r.Samples {
			pps = append(pps, s.PPS)
			hit = append(hit, s.HitRate)
		}
		r.PPS, r.HitRate = median(pps), median(hit)
	}
	rep.Ratios = nil
	for _, g := range rep.Results {
		if g.Scanner != ScannerGPS || len(g.Samples) == 0 {
			continue
		}
		for _, z := range rep.Results {
			if z.Scanner == ScannerZMap && z.Rate == g.Rate && len(z.Samples) > 0 && z.PPS > 0 {
				rep.Ratios = append(rep.Ratios, Ratio{Rate: g.Rate, PPS: g.PPS / z.PPS, GPSHitRate: g.HitRate, ZMapHitRate: z.HitRate})
			}
		}
	}
}

func rateString(r float64) string {
	if r == 0 {
		return "max"
	}
	return fmt.Sprintf("%.0f", r)
}

// WriteTable prints the report as a table, then the ratios.
func (rep *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "rate cap\tscanner\tpps (median)\thit rate (median)\truns (pps / hit rate)\t\n")
	for _, r := range rep.Results {
		if r.Skipped != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\tskipped: %s\t\n", rateString(r.Rate), r.Scanner, r.Skipped)
			continue
		}
		var runs []string
		for _, s := range r.Samples {
			runs = append(runs, fmt.Sprintf("%.0f/%.1f%%", s.PPS, 100*s.HitRate))
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.2f%%\t%s\t\n", rateString(r.Rate), r.Scanner, r.PPS, 100*r.HitRate, strings.Join(runs, " "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, x := range rep.Ratios {
		fmt.Fprintf(w, "gps/zmap packets per second at rate cap %s: %.2f (hit rate gps %.2f%%, zmap %.2f%%)\n",
			rateString(x.Rate), x.PPS, 100*x.GPSHitRate, 100*x.ZMapHitRate)
	}
	return nil
}

// WriteJSON writes the report as indented JSON.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// hits counts the addresses of found that are open, and those that are not.
func hits(found []uint32, open map[uint32]bool) (ok, bad int) {
	seen := map[uint32]bool{}
	for _, a := range found {
		if seen[a] {
			continue
		}
		seen[a] = true
		if open[a] {
			ok++
		} else {
			bad++
		}
	}
	return ok, bad
}
