package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/batch"
	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/lab"
)

func demoCmd() command {
	return command{
		name:  "demo",
		usage: "make a lab world, run batch GPS on it and replay every policy (defaults need no flags)",
		flags: func(fs *flag.FlagSet) func(context.Context, *zap.Logger) error {
			dir := fs.String("dir", "", "working directory (default: a new temporary directory)")
			c := lab.Config{Seed: 1, Hosts: 30000, Slash16s: 16, SeedFrac: 0.03}.WithDefaults()
			fs.Int64Var(&c.Seed, "seed", c.Seed, "world seed")
			fs.IntVar(&c.Hosts, "hosts", c.Hosts, "hosts in the world")
			return func(ctx context.Context, log *zap.Logger) error {
				if err := c.Validate(); err != nil {
					return usageErr("%v", err)
				}
				d := *dir
				if d == "" {
					var err error
					if d, err = os.MkdirTemp("", "gps-demo-"); err != nil {
						return fmt.Errorf("make demo dir: %w", err)
					}
				}
				world := filepath.Join(d, "world")
				w, err := lab.Generate(c)
				if err != nil {
					return err
				}
				if err := w.Write(world); err != nil {
					return err
				}
				log.Info("world written", zap.String("dir", world), zap.Int("services", w.Meta.Services), zap.Int("seed_services", w.Meta.SeedServices))
				if _, err := batch.First(batch.FirstConfig{Seed: filepath.Join(world, "seed.jsonl"), Out: filepath.Join(d, "gps"),
					Hitrate: batch.DefaultHitrate, Step: batch.DefaultStep}, log); err != nil {
					return err
				}
				ec := eval.Config{World: world, Out: filepath.Join(d, "eval"), Params: eval.Params{Hitrate: batch.DefaultHitrate, Step: batch.DefaultStep}}
				if _, err := eval.Run(ec, os.Stdout, log); err != nil {
					return err
				}
				fmt.Printf("\nworld: %s\nmodel and plan: %s\ncoverage plot: %s\n", world, filepath.Join(d, "gps"), filepath.Join(ec.Out, "coverage.png"))
				return nil
			}
		},
	}
}
