package main

import (
	"context"
	"flag"
	"os"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/gps"
)

func evalCmd() command {
	return command{
		name:  "eval",
		usage: "replay a world: coverage against probes for GPS, streaming GPS and baselines",
		flags: func(fs *flag.FlagSet) func(context.Context, *zap.Logger) error {
			var c eval.Config
			fs.StringVar(&c.World, "world", "", "world directory (truth.jsonl, seed.jsonl, pfx2as.tsv, meta.json)")
			fs.StringVar(&c.Out, "out", "", "output directory for summary.json, curves.csv and coverage.png")
			fs.Uint64Var(&c.Budget, "budget", 0, "probes after the seed each policy may send (0: no limit)")
			fs.Float64Var(&c.Hitrate, "hitrate", gps.DefaultHitrate, "minimum hitrate of a rule and of a plan group")
			fs.IntVar(&c.Step, "step", gps.DefaultStep, "prefix length of the priors plan groups")
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
