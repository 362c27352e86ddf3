// Package lab generates a deterministic synthetic Internet (a "world") inside
// 127.0.0.0/8: ASes announcing prefixes, hosts of correlated device types whose
// ports and banners predict each other, rare ports, pseudo-service middleboxes
// and noise. A world is the ground truth, a seed sampled from it as GPS would
// scan it, and the prefix-to-AS table; it feeds the batch model, evaluation and
// the lab server.
//
// The world only spans 127.1.0.0/16 .. 127.N.0.0/16 (N = Config.Slash16s), so
// 127.0.0.0/16, where the loopback services of the machine itself live, is
// never part of it.
package lab

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/gpsscan/gps/pkg/atomicfile"
	"github.com/gpsscan/gps/pkg/pfx2as"
	"github.com/gpsscan/gps/pkg/problems"
	"github.com/gpsscan/gps/pkg/row"
)

// Defaults of Config; a zero field means its default.
const (
	DefaultHosts      = 20000
	DefaultSlash16s   = 64
	DefaultSeedFrac   = 0.01
	DefaultASes       = 40
	DefaultPseudoFrac = 0.0005
	// PaperPseudoFrac makes a paper-scale seed (before LZR-style filtering)
	// average about 3 services per host, as GPS's 1 % seed does.
	PaperPseudoFrac  = 0.003
	DefaultNoiseFrac = 0.05

	// MaxCycles is the most cycles of change a world may have (one file each).
	MaxCycles = 9999
	// MaxChurn is the largest scale of the rates of change: ten times the
	// defaults already renews most of a world in a few cycles.
	MaxChurn = 100

	// MaxSlash16s is the number of /16s of 127.0.0.0/8 a world may use:
	// 127.1.0.0/16 .. 127.254.0.0/16.
	MaxSlash16s = 254
)

// ErrConfig is wrapped by every error of Config.Validate.
var ErrConfig = errors.New("bad lab config")

// Config describes a world. The same Config always gives byte-identical output.
// A zero field means its default (see WithDefaults); to get no pseudo-service
// or noise hosts at all, set PseudoFrac or NoiseFrac to a negative value.
type Config struct {
	Seed       int64   // RNG seed
	Hosts      int     // responsive hosts in the world
	Slash16s   int     // /16s used: 127.1.0.0/16 .. 127.<Slash16s>.0.0/16
	SeedFrac   float64 // fraction of the addresses of those /16s sampled as seed
	ASes       int     // autonomous systems
	PseudoFrac float64 // fraction of hosts that answer on 100-400 ports (middleboxes)
	NoiseFrac  float64 // fraction of hosts with 1-2 random extra services
	// Cycles is how many cycles of change follow cycle 0 (changes/, see
	// churn.go); 0: none, the world does not change.
	Cycles int
	// Churn scales every rate of change (1: the documented rates of
	// churnRates); 0 means 1, a negative value no change at all.
	Churn float64
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	c.Hosts = cmp.Or(c.Hosts, DefaultHosts)
	c.Slash16s = cmp.Or(c.Slash16s, DefaultSlash16s)
	c.SeedFrac = cmp.Or(c.SeedFrac, DefaultSeedFrac)
	c.ASes = cmp.Or(c.ASes, DefaultASes)
	c.PseudoFrac = cmp.Or(c.PseudoFrac, DefaultPseudoFrac)
	c.NoiseFrac = cmp.Or(c.NoiseFrac, DefaultNoiseFrac)
	c.Churn = cmp.Or(c.Churn, 1)
	return c
}

// Validate checks c after defaults; the error lists every bad field.
func (c Config) Validate() error {
	c = c.WithDefaults()
	p := problems.New(ErrConfig)
	s16ok := c.Slash16s >= 1 && c.Slash16s <= MaxSlash16s
	if !s16ok {
		p.Addf("slash16s %d out of range 1..%d", c.Slash16s, MaxSlash16s)
	}
	switch {
	case c.Hosts < 1:
		p.Addf("hosts %d must be at least 1", c.Hosts)
	case s16ok && c.Hosts > c.Slash16s<<16:
		p.Addf("hosts %d exceed the %d addresses of %d /16s", c.Hosts, c.Slash16s<<16, c.Slash16s)
	}
	if !(c.SeedFrac > 0 && c.SeedFrac <= 1) {
		p.Addf("seed_frac %v not in (0,1]", c.SeedFrac)
	}
	switch {
	case c.ASes < 1:
		p.Addf("ases %d must be at least 1", c.ASes)
	case s16ok && c.ASes > c.Slash16s<<8:
		p.Addf("ases %d exceed the %d /24s of %d /16s (an AS needs one at least)", c.ASes, c.Slash16s<<8, c.Slash16s)
	}
	if math.IsNaN(c.PseudoFrac) || c.PseudoFrac > 1 {
		p.Addf("pseudo_frac %v above 1", c.PseudoFrac)
	}
	if math.IsNaN(c.NoiseFrac) || c.NoiseFrac > 1 {
		p.Addf("noise_frac %v above 1", c.NoiseFrac)
	}
	if c.Cycles < 0 || c.Cycles > MaxCycles {
		p.Addf("cycles %d out of range 0..%d", c.Cycles, MaxCycles)
	}
	if math.IsNaN(c.Churn) || c.Churn > MaxChurn {
		p.Addf("churn %v above %v", c.Churn, MaxChurn)
	}
	return p.Err()
}

// World is a generated synthetic Internet.
type World struct {
	Truth  []row.Row       // every service at cycle 0, sorted by (ip numeric, port)
	Seed   []row.Row       // every service of the sampled addresses at cycle 0, same order
	Pfx2AS []pfx2as.Prefix // announced prefixes, sorted by (prefix numeric, len)
	// Changes are the changes of cycles 1..Config.Cycles: Changes[k-1] turns
	// the truth of cycle k-1 into that of cycle k.
	Changes [][]Change
	Meta    Meta
}

// Meta summarises a world; it is written as meta.json.
type Meta struct {
	Hosts        int            `json:"hosts"`
	Services     int            `json:"services"`
	SeedHosts    int            `json:"seed_hosts"`
	SeedServices int            `json:"seed_services"`
	Params       map[string]any `json:"params"`
	// Changes count each cycle's changes (none without cycles).
	Changes []CycleCounts `json:"changes,omitempty"`
}

// Generate builds the world of c (after defaults).
func Generate(c Config) (*World, error) {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("generate world: %w", err)
	}
	g := newGen(c)
	nAddr := c.Slash16s << 16
	k := int(math.Round(float64(nAddr) * c.SeedFrac))
	sample := sampleAddrs(c.Seed, nAddr, k)
	w := &World{Pfx2AS: g.t.pfx}
	w.Truth = make([]row.Row, 0, c.Hosts*3)
	hosts, seedHosts := 0, 0
	var buf []row.Row
	var devs []int // the device type of each host, for the churn
	g.run(func(h *host) {
		hosts++
		if c.Cycles > 0 {
			devs = append(devs, h.dev)
		}
		buf = h.rows(buf[:0])
		w.Truth = append(w.Truth, buf...)
		if sample.has(h.addr - spaceStart) {
			seedHosts++
			w.Seed = append(w.Seed, buf...)
		}
	})
	w.Meta = Meta{
		Hosts:        hosts,
		Services:     len(w.Truth),
		SeedHosts:    seedHosts,
		SeedServices: len(w.Seed),
		Params: map[string]any{
			"seed":           c.Seed,
			"hosts":          c.Hosts,
			"slash16s":       c.Slash16s,
			"seed_frac":      c.SeedFrac,
			"ases":           c.ASes,
			"pseudo_frac":    c.PseudoFrac, // negative: none, as in Config
			"noise_frac":     c.NoiseFrac,
			"seed_addresses": k,
			"prefixes":       len(w.Pfx2AS),
		},
	}
	if c.Cycles > 0 {
		// Only a world with cycles says so: one without keeps the meta.json
		// it always had.
		w.Meta.Params["cycles"] = c.Cycles
		w.Meta.Params["churn"] = max(c.Churn, 0)
		w.Changes, w.Meta.Changes = newChurner(g, w, devs).cycles(c.Cycles)
	}
	return w, nil
}

// GenerateSeed streams, without keeping them, the services of every host of
// a world spanning all 254 /16s: the seed of a scan that sampled every
// address, for paper-scale benchmarks (with defaults a host averages about 3
// services). c.Slash16s and c.SeedFrac are ignored; the rows are exactly the
// Truth of Generate(c) with Slash16s = 254, in the same order.
func GenerateSeed(c Config, fn func(row.Row)) error {
	c = c.WithDefaults()
	c.Slash16s = MaxSlash16s
	if err := c.Validate(); err != nil {
		return fmt.Errorf("generate seed: %w", err)
	}
	var buf []row.Row
	newGen(c).run(func(h *host) {
		buf = h.rows(buf[:0])
		for _, r := range buf {
			fn(r)
		}
	})
	return nil
}

// Prefixes returns the prefix-to-AS table of the world of c (after
// defaults); it depends only on Seed, Slash16s and ASes.
func Prefixes(c Config) ([]pfx2as.Prefix, error) {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("build prefixes: %w", err)
	}
	return buildTopo(c, newCatalog()).pfx, nil
}

// File names inside a world directory.
const (
	TruthFile  = "truth.jsonl"
	SeedFile   = "seed.jsonl"
	Pfx2ASFile = "pfx2as.tsv"
	MetaFile   = "meta.json"
)

// WorldFile is the path of a row file of a world: DIR/name, or DIR/name.gz
// when only that exists (a world may be kept compressed; row readers read
// either). With neither, it is DIR/name, for the error to name.
func WorldFile(dir, name string) string {
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		if _, gzErr := os.Stat(p + ".gz"); gzErr == nil {
			return p + ".gz"
		}
	}
	return p
}

// Write writes the world into dir (created if missing) as truth.jsonl,
// seed.jsonl, pfx2as.tsv and meta.json. Each file is written whole or not at
// all; if one fails, the ones this call already wrote are removed.
func (w *World) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write world: %w", err)
	}
	p := func(name string) string { return filepath.Join(dir, name) }
	files := map[string]func(io.Writer) error{
		p(TruthFile):  func(out io.Writer) error { return writeRows(out, w.Truth) },
		p(SeedFile):   func(out io.Writer) error { return writeRows(out, w.Seed) },
		p(Pfx2ASFile): func(out io.Writer) error { return pfx2as.Write(out, w.Pfx2AS) },
		p(MetaFile): func(out io.Writer) error {
			b, err := json.MarshalIndent(w.Meta, "", "  ")
			if err != nil {
				return err
			}
			_, err = out.Write(append(b, '\n'))
			return err
		},
	}
	order := []string{p(TruthFile), p(SeedFile), p(Pfx2ASFile)}
	if len(w.Changes) > 0 {
		if err := os.MkdirAll(filepath.Join(dir, ChangesDir), 0o755); err != nil {
			return fmt.Errorf("write world: %w", err)
		}
	}
	for i, cs := range w.Changes {
		path := ChangesFile(dir, i+1)
		files[path] = func(out io.Writer) error { return writeChanges(out, cs) }
		order = append(order, path)
	}
	// meta.json last: it says how many cycles there are.
	order = append(order, p(MetaFile))
	if err := atomicfile.Set(files, order); err != nil {
		return fmt.Errorf("write world: %w", err)
	}
	// Change files of an older world with more cycles would only mislead.
	for k := len(w.Changes) + 1; ; k++ {
		if err := os.Remove(ChangesFile(dir, k)); err != nil {
			break
		}
	}
	return nil
}

func writeRows(out io.Writer, rows []row.Row) error {
	for i := range rows {
		b, err := json.Marshal(&rows[i])
		if err != nil {
			return err
		}
		if _, err := out.Write(append(b, '\n')); err != nil {
			return err
		}
	}
	return nil
}

// ReadMeta reads dir/meta.json. The parameters a world is generated from
// come back with the types Generate gave them (int, int64, float64), so a
// Meta survives the round trip; other numbers are float64 as encoding/json
// would give them.
func ReadMeta(dir string) (Meta, error) {
	path := filepath.Join(dir, MetaFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return Meta{}, fmt.Errorf("read meta: %w", err)
	}
	var m Meta
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // keeps a seed beyond 2^53 exact
	err = d.Decode(&m)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || err == nil && len(bytes.TrimSpace(b[d.InputOffset():])) > 0 {
		// Empty, cut short, or more after the value: json.Unmarshal says so
		// with the place (a *json.SyntaxError), as for any other syntax error.
		err = json.Unmarshal(b, new(any))
	}
	if err != nil {
		return Meta{}, fmt.Errorf("read meta: %s: %w", path, err)
	}
	for k, v := range m.Params {
		m.Params[k] = metaValue(k, v)
	}
	return m, nil
}

// metaValue turns the json.Numbers of a decoded parameter into Go numbers.
func metaValue(key string, v any) any {
	switch x := v.(type) {
	case json.Number:
		switch key {
		case "hosts", "slash16s", "ases", "seed_addresses", "prefixes", "cycles":
			if n, err := strconv.Atoi(x.String()); err == nil {
				return n
			}
		case "seed":
			if n, err := x.Int64(); err == nil {
				return n
			}
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = metaValue("", x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = metaValue("", x[k])
		}
	}
	return v
}

// bitset is a set of address indices (addr - spaceStart).
type bitset []uint64

func (b bitset) has(i uint32) bool { return int(i>>6) < len(b) && b[i>>6]&(1<<(i&63)) != 0 }
func (b bitset) set(i uint32)      { b[i>>6] |= 1 << (i & 63) }
func (b bitset) clear(i uint32)    { b[i>>6] &^= 1 << (i & 63) }

// sampleAddrs picks k of the n addresses uniformly without replacement. It
// has its own random stream, so the sample depends on Seed and the size of the
// space only, never on the hosts (changing Hosts keeps the seed addresses).
func sampleAddrs(seed int64, n, k int) bitset {
	r := rand.New(rand.NewPCG(uint64(seed), streamSeed))
	b := make(bitset, (n+63)/64)
	if 2*k > n {
		// Most addresses are in: start from all and drop n-k of them.
		for i := range n {
			b.set(uint32(i))
		}
		for drop := n - k; drop > 0; {
			if i := uint32(r.IntN(n)); b.has(i) {
				b.clear(i)
				drop--
			}
		}
		return b
	}
	for left := k; left > 0; {
		if i := uint32(r.IntN(n)); !b.has(i) {
			b.set(i)
			left--
		}
	}
	return b
}
