package main

import (
	"context"
	"flag"
	"os"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/eval"
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
			fs.StringVar(&c.Out, "out", "", "output directory for summary.json, curves.csv and coverage.png")
			fs.Uint64Var(&c.Budget, "budget", 0, "probes after the seed each policy may send (0: no limit)")
			fs.Float64Var(&c.Hitrate, "hitrate", gps.DefaultHitrate, "minimum hitrate of a rule and of a plan group")
			fs.IntVar(&c.Step, "step", gps.DefaultStep, "prefix length of the priors plan groups")
			fs.Uint64Var(&c.Chunk, "chunk", schedule.DefaultChunk, "gps-stream: addresses of a sweep probed at once, a power of two")
			fs.Float64Var(&c.PriorWeight, "prior-weight", 1, "gps-stream: weight of a sweep's prior yield against its chunks' hits")
			fs.BoolVar(&c.NoLearning, "no-learning", false, "gps-stream: keep every sweep at its prior yield")
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
