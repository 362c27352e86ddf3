package prober

import (
	"context"
	"flag"
	"fmt"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/explore"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/schedule"
	"github.com/gpsscan/gps/pkg/wire"
)

// registerOwnFlags registers the flags of the own seed, with gps eval's
// defaults but --own-seed's (off).
func (c *Config) registerOwnFlags(fs *flag.FlagSet) {
	fs.Float64Var(&c.Own.OwnSeed, "own-seed", 0, fmt.Sprintf("take an own seed (gps-stream-own, as gps eval's): the share of --own-space seeded on every port at the start, then more as it pays, and sweep the ports learned (0: off; gps eval's default is %g)", explore.DefaultOwnSeed))
	fs.Uint64Var(&c.Own.Key, "own-seed-key", explore.DefaultKey, "own seed: key of the cyclic order its seed takes addresses in")
	fs.Float64Var(&c.Own.RandShare, "rand-share", explore.DefaultRandShare, "own seed: most of the probes its random seed may take as it goes on (while one of its last --host-window addresses answered)")
	fs.Float64Var(&c.Own.SeedMax, "seed-max", explore.DefaultSeedMax, "own seed: most of the space its random seed may take")
	fs.Float64Var(&c.Own.HostShare, "host-share", explore.DefaultHostShare, "own seed: most of the probes spent seeding hosts it found")
	fs.IntVar(&c.Own.HostWindow, "host-window", explore.DefaultHostWindow, "own seed: stop seeding found hosts once this many in a row taught no new port, and random addresses once this many in a row found no host")
	fs.IntVar(&c.Own.PortMin, "port-min", explore.DefaultPortMin, "own seed: found services a port needs before it is swept over the space")
	fs.IntVar(&c.Own.ProbeFound, "probe-found", explore.DefaultProbeFound, "own seed: found hosts a port found on one host is probed on (those most like it) before a second find sweeps it; 0: none")
	fs.StringVar(&c.Own.HostOrder, "host-order", explore.DefaultHostOrder, "own seed: order found hosts are seeded in: mixed (random and kinds in turn), random (a fixed pseudo-random order of the real-looking ones, each seed a uniform sample of them), kinds (by their found ports, the kind whose seeds found the most per seed first) or found (in the order found, pseudo-hosts too)")
	fs.Var((*listFlag)(&c.OwnSpace), "own-space", "own seed: the space it seeds and sweeps, prefixes of /16 or shorter (repeatable, comma-separated; gps all --world: the world's /16s); inside the allow list")
}

// validateOwn adds the problems of the own seed's configuration.
func (c Config) validateOwn(bad func(string, ...any)) {
	if err := c.Own.Validate(); err != nil {
		bad("%v", err)
	}
	if c.Own.OwnSeed <= 0 || len(c.OwnSpace) == 0 {
		return // none given: an error when the prober starts (gps all --world gives the world's)
	}
	if _, err := explore.ParseSpace(c.OwnSpace); err != nil {
		bad("--own-space: %v", err)
	}
}

// own runs gps-stream-own's policy in the prober: its seeds and sweeps go
// to the prober's scheduler under tokens of no bus message, what any work
// finds is learned, and a sender with nothing to do asks it for a seed.
// Its state lives in the prober: a restarted prober starts the policy
// afresh (docs/small-seed.md).
type own struct {
	pol                 *explore.Policy
	sched               *schedule.Scheduler
	random, host, sweep *held
	exhausted           atomic.Bool  // a sender found nothing pending and nothing to seed, and no work was taken since
	inflight            atomic.Int32 // works taken and not yet done
	st                  *Stats
}

// newOwn makes the policy of c over the prober's scheduler (whose
// Config.Skip must be seeded), its space checked against the allow policy.
func newOwn(c Config, pol *ipv4.Policy, sched *schedule.Scheduler, seeded *explore.Seeded, st *Stats) (*own, error) {
	sp, err := explore.ParseSpace(c.OwnSpace)
	if err != nil {
		return nil, fmt.Errorf("own seed: --own-space: %w", err)
	}
	for _, p16 := range sp.Slash16s() {
		if pr := (ipv4.Prefix{Addr: p16, Bits: 16}); !pol.AllowedPrefix(pr) {
			return nil, fmt.Errorf("own seed: --own-space %s is not inside the allow policy", pr)
		}
	}
	o := &own{random: &held{own: true, phase: wire.PhaseSeed}, host: &held{own: true, phase: wire.PhaseSeed},
		sweep: &held{own: true, phase: wire.PhasePriors}, sched: sched, st: st}
	o.pol = explore.New(c.Own, sp, sched, seeded, explore.Tokens{Random: o.random, Host: o.host, Sweep: o.sweep})
	return o, nil
}

// next is the scheduler's next work; when nothing is pending the policy
// seeds more, and when it has nothing more to seed the sender waits for
// work from the bus.
func (o *own) next(ctx context.Context) (schedule.Work, error) {
	for {
		w, ok, err := o.sched.TryNext(ctx)
		if err != nil || ok {
			o.taken(ok)
			return w, err
		}
		if o.pol.Refill() {
			continue
		}
		o.exhausted.Store(true)
		o.update()
		w, err = o.sched.Next(ctx)
		o.taken(err == nil)
		return w, err
	}
}

// taken records that a sender took work (when ok).
func (o *own) taken(ok bool) {
	if ok {
		o.exhausted.Store(false)
		o.st.OwnIdle.Store(false)
	}
}

// begin and end bracket the probing of n works taken.
func (o *own) begin(n int) { o.inflight.Add(int32(n)) }
func (o *own) end(n int) {
	o.inflight.Add(-int32(n))
	o.update()
}

// update sets Stats.OwnIdle: the policy has nothing left to seed, nothing
// is pending and no work is being probed.
func (o *own) update() {
	o.st.OwnIdle.Store(o.exhausted.Load() && o.inflight.Load() == 0 && o.sched.Len() == 0)
}

// learn takes in what w found (found: every service it answered with,
// those known before included) and seeds more when it is due; spent is
// the prober's probe count after w.
func (o *own) learn(w schedule.Work, found []gps.Target, spent uint64) {
	o.pol.Learn(w, found)
	o.pol.MaybeSeed(spent)
}

// log sums up what the policy did.
func (o *own) log(log *zap.Logger) {
	s := o.pol.Stats()
	log.Info("own seed", zap.Int("random_seeds", s.RandomSeeds), zap.Int("random_hosts", s.RandomHosts),
		zap.Int("host_seeds", s.HostSeeds), zap.Int("learned_ports", s.LearnedPorts))
}
