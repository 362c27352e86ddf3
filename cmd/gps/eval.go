package main

import (
	"context"
	"flag"
	"os"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/explore"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/schedule"
)

func evalCmd() command {
	return command{
		name:  "eval",
		usage: "replay a world: coverage against probes for GPS, streaming GPS and baselines",
		flags: func(fs *flag.FlagSet) func(context.Context, *zap.Logger) error {
			var c eval.Config
			fs.StringVar(&c.World, "world", "", "world directory (truth.jsonl, seed.jsonl, pfx2as.tsv, meta.json)")
			fs.StringVar(&c.Out, "out", "", "output directory for summary.json, curves.csv and coverage.png (and cycles.csv, cycles.png for a world with cycles)")
			fs.Uint64Var(&c.Budget, "budget", 0, "probes after the seed each policy may send (0: no limit)")
			fs.Float64Var(&c.Hitrate, "hitrate", gps.DefaultHitrate, "minimum hitrate of a rule and of a plan group")
			fs.IntVar(&c.Step, "step", gps.DefaultStep, "prefix length of the priors plan groups")
			fs.Uint64Var(&c.Chunk, "chunk", schedule.DefaultChunk, "gps-stream: addresses of a sweep probed at once, a power of two")
			fs.Float64Var(&c.PriorWeight, "prior-weight", 1, "gps-stream: weight of a sweep's prior yield against its chunks' hits")
			fs.BoolVar(&c.NoLearning, "no-learning", false, "gps-stream: keep every sweep at its prior yield")
			fs.IntVar(&c.Cycle.Cycles, "cycles", 0, "a world with cycles: replay cycles 0..N over time (0: all it has)")
			fs.Float64Var(&c.Cycle.SeedFrac, "cycle-seed-frac", 0, "continuous: seed fraction of each cycle after 0 (0: a quarter of the world's)")
			fs.Uint64Var(&c.Cycle.Budget, "cycle-budget", 0, "continuous: probes a cycle after the seed (0: no limit)")
			fs.Float64Var(&c.Cycle.RefreshYield, "refresh-yield", 0, "continuous: yield of a refresh probe in the scheduler (0: the last cycle's survival rate)")
			fs.IntVar(&c.Cycle.GoneAfter, "gone-after", eval.DefaultGoneAfter, "continuous: failed refreshes in a row after which a service is gone")
			fs.Float64Var(&c.OwnSeed, "own-seed", explore.DefaultOwnSeed, "gps-stream-own: share of the space it seeds (every port) at the start; 0: not run")
			fs.Uint64Var(&c.OwnSeedKey, "own-seed-key", explore.DefaultKey, "gps-stream-own: key of the cyclic order its seed takes addresses in")
			fs.Float64Var(&c.RandShare, "rand-share", explore.DefaultRandShare, "gps-stream-own: most of its probes its random seed may take as it goes on (while one of its last --host-window addresses answered)")
			fs.Float64Var(&c.SeedMax, "seed-max", explore.DefaultSeedMax, "gps-stream-own: most of the space its random seed may take")
			fs.Float64Var(&c.HostShare, "host-share", explore.DefaultHostShare, "gps-stream-own: most of its probes spent seeding hosts it found")
			fs.IntVar(&c.HostWindow, "host-window", explore.DefaultHostWindow, "gps-stream-own: stop seeding found hosts once this many in a row taught no new port, and random addresses once this many in a row found no host")
			fs.IntVar(&c.PortMin, "port-min", explore.DefaultPortMin, "gps-stream-own: found services a port needs before it is swept over the space")
			fs.IntVar(&c.ProbeFound, "probe-found", explore.DefaultProbeFound, "gps-stream-own: found hosts a port found on one host is probed on (those most like it) before a second find sweeps it; 0: none")
			fs.StringVar(&c.HostOrder, "host-order", explore.DefaultHostOrder, "gps-stream-own: order found hosts are seeded in: mixed (random and kinds in turn), random (a fixed pseudo-random order of the real-looking ones, each seed a uniform sample of them), kinds (by their found ports, the kind whose seeds found the most per seed first) or found (in the order found, pseudo-hosts too)")
			fs.BoolVar(&c.MultiPredict, "multi-predict", true, "gps-stream-own: predict from all found services of a host at once")
			fs.Float64Var(&c.Floor, "floor", 0, "gps-stream-own: stop when the best pending work is worth fewer services per probe")
			return func(ctx context.Context, log *zap.Logger) error {
				if err := c.Validate(); err != nil {
					return usageErr("%v", err)
				}
				_, err := eval.Run(c, os.Stdout, log)
				return err
			}
		},
	}
}
