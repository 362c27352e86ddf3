package main

import (
	"context"
	"flag"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/batch"
	"github.com/gpsscan/gps/pkg/gps"
)

func firstCmd() command {
	return command{
		name:  "first",
		usage: "GPS Phase 1: model.jsonl and plan.csv from a seed scan",
		flags: func(fs *flag.FlagSet) func(context.Context, *zap.Logger) error {
			var c batch.FirstConfig
			fs.StringVar(&c.Seed, "seed", "", "seed scan, GPS rows as JSON lines (.gz allowed)")
			fs.StringVar(&c.Out, "out", "", "output directory for model.jsonl and plan.csv")
			fs.Float64Var(&c.Hitrate, "hitrate", gps.DefaultHitrate, "minimum hitrate of a rule, and of a plan group per address")
			fs.IntVar(&c.Step, "step", gps.DefaultStep, "prefix length of the priors plan groups")
			return func(ctx context.Context, log *zap.Logger) error {
				if err := c.Validate(); err != nil {
					return usageErr("%v", err)
				}
				_, err := batch.First(c, log)
				return err
			}
		},
	}
}

func remainingCmd() command {
	return command{
		name:  "remaining",
		usage: "GPS Phase 2: predictions.txt from a model, a plan and the priors scan",
		flags: func(fs *flag.FlagSet) func(context.Context, *zap.Logger) error {
			var c batch.RemainingConfig
			fs.StringVar(&c.Seed, "seed", "", "seed scan, GPS rows (its services are not predicted again)")
			fs.StringVar(&c.Priors, "priors", "", "services found by scanning plan.csv, GPS rows")
			fs.StringVar(&c.Dir, "dir", "", "directory holding model.jsonl and plan.csv; predictions.txt is written there")
			fs.IntVar(&c.Step, "step", gps.DefaultStep, "prefix length of the plan groups (as given to gps first)")
			return func(ctx context.Context, log *zap.Logger) error {
				_, err := batch.RemainingFiles(c, log)
				return err
			}
		},
	}
}
