package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/batch"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/services/all"
)

func demoCmd() command {
	return command{
		name:  "demo",
		usage: "make a lab world, run the streaming pipeline on it (embedded NATS), and compare with batch GPS and the baselines",
		flags: func(fs *flag.FlagSet) func(context.Context, *zap.Logger) error {
			dir := fs.String("dir", "", "working directory (default: a new temporary directory)")
			c := lab.Config{Seed: 1, Hosts: 10000, Slash16s: 8, SeedFrac: 0.05}.WithDefaults()
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

				// The streaming pipeline, all four services on an embedded server.
				b, err := bus.Connect(ctx, bus.Config{DataDir: filepath.Join(d, "nats"), Name: "gps-demo"}, log)
				if err != nil {
					return err
				}
				start := time.Now()
				sum, _, err := all.Run(ctx, all.Deps{Config: all.Config{World: world, Hitrate: batch.DefaultHitrate, Step: batch.DefaultStep, Quiet: time.Second},
					Bus: b, Log: log.With(zap.String("service", "all"))})
				b.Close()
				if err != nil {
					return err
				}
				log.Info("pipeline done", zap.Duration("elapsed", time.Since(start)))

				// The same world replayed offline under every policy.
				ec := eval.Config{World: world, Out: filepath.Join(d, "eval"), Params: eval.Params{Hitrate: batch.DefaultHitrate, Step: batch.DefaultStep}}
				fmt.Println("\noffline replay of the same world (gps eval):")
				if _, err := eval.Run(ec, os.Stdout, log); err != nil {
					return err
				}
				fmt.Printf("\nstreaming pipeline (gps all) summary:\n%s\n", sum.JSON())
				fmt.Printf("\nworld: %s\ncoverage plot: %s\n", world, filepath.Join(ec.Out, "coverage.png"))
				return nil
			}
		},
	}
}
