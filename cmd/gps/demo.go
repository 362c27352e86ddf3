package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/netprobe"
	"github.com/gpsscan/gps/services/all"
	"github.com/gpsscan/gps/services/modeler"
	"github.com/gpsscan/gps/services/predictor"
	"github.com/gpsscan/gps/services/prober"
)

func demoCmd() command {
	return command{
		name:  "demo",
		usage: "make a lab world, run the streaming pipeline on it (embedded NATS), and compare with batch GPS and the baselines",
		flags: func(fs *flag.FlagSet) func(context.Context, *zap.Logger) error {
			dir := fs.String("dir", "", "working directory (default: a new temporary directory)")
			live := fs.Bool("live", false, "also serve the world as real TCP listeners on 127.0.0.0/8 and scan it for real (connect engine, zgrab2), and compare with the simulated run; the world then defaults to 3,000 hosts in one /16 and the plan to /20 groups, so the live scan takes about a minute")
			engine := fs.String("engine", netprobe.EngineConnect, "with --live: connect (TCP connect) or syn (raw-socket SYN scan, needs CAP_NET_RAW)")
			c := lab.Config{Seed: 1, Hosts: 10000, Slash16s: 8, SeedFrac: 0.05}.WithDefaults()
			step := gps.DefaultStep
			fs.Int64Var(&c.Seed, "seed", c.Seed, "world seed")
			fs.IntVar(&c.Hosts, "hosts", c.Hosts, "hosts in the world")
			fs.IntVar(&c.Slash16s, "slash16s", c.Slash16s, "/16s the world spans")
			fs.IntVar(&step, "step", step, "prefix length of the priors plan groups")
			return func(ctx context.Context, log *zap.Logger) error {
				if *live {
					set := map[string]bool{}
					fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
					liveDefaults(&c, &step, set)
				}
				if err := labZeros(fs, &c); err != nil {
					return err
				}
				if err := c.Validate(); err != nil {
					return usageErr("%v", err)
				}
				if step < 1 || step > 32 {
					return usageErr("--step %d: want 1..32", step)
				}
				if *engine != netprobe.EngineConnect && *engine != netprobe.EngineSYN {
					return usageErr("--engine %q: want %s or %s", *engine, netprobe.EngineConnect, netprobe.EngineSYN)
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
				sum, err := demoRun(ctx, log, d, "nats", all.Config{World: world, Quiet: time.Second, Modeler: modeler.Config{Hitrate: gps.DefaultHitrate, Step: step}, Predictor: predictor.Config{Hitrate: gps.DefaultHitrate}})
				if err != nil {
					return err
				}
				var liveSum *eval.RunSummary
				if *live {
					if liveSum, err = demoRun(ctx, log, d, "nats-live", all.Config{World: world, Quiet: time.Second, Modeler: modeler.Config{Hitrate: gps.DefaultHitrate, Step: step}, Predictor: predictor.Config{Hitrate: gps.DefaultHitrate}, Prober: prober.Config{LiveConfig: prober.LiveConfig{Live: true, Engine: *engine}}}); err != nil {
						return err
					}
				}

				// The same world replayed offline under every policy.
				ec := eval.Config{World: world, Out: filepath.Join(d, "eval"), Params: eval.Params{Hitrate: gps.DefaultHitrate, Step: step}}
				fmt.Println("\noffline replay of the same world (gps eval):")
				if _, err := eval.Run(ec, os.Stdout, log); err != nil {
					return err
				}
				fmt.Printf("\nstreaming pipeline (gps all) summary:\n%s\n", sum.JSON())
				if liveSum != nil {
					fmt.Printf("\nthe same, scanning the served lab for real (gps all --live):\n%s\n", liveSum.JSON())
					fmt.Printf("live coverage %.2f %%, simulated %.2f %%: %+.2f points\n", 100*liveSum.Coverage, 100*sum.Coverage, 100*(liveSum.Coverage-sum.Coverage))
				}
				fmt.Printf("\nworld: %s\ncoverage plot: %s\n", world, filepath.Join(ec.Out, "coverage.png"))
				return nil
			}
		},
	}
}

// liveDefaults sizes the world and plan of a live demo where the user did
// not: a sweep of a /16 is 65,536 connects, so the live world is one /16
// and the plan's groups are /20s (4,096 addresses each).
func liveDefaults(c *lab.Config, step *int, set map[string]bool) {
	if !set["hosts"] {
		c.Hosts = 3000
	}
	if !set["slash16s"] {
		c.Slash16s = 1
	}
	if !set["step"] {
		*step = 20
	}
}

// demoRun runs the pipeline on a new embedded server under dir/name.
func demoRun(ctx context.Context, log *zap.Logger, dir, name string, c all.Config) (*eval.RunSummary, error) {
	b, err := bus.Connect(ctx, bus.Config{DataDir: filepath.Join(dir, name), Name: "gps-demo"}, log)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	start := time.Now()
	sum, _, err := all.Run(ctx, all.Deps{Config: c, Bus: b, Log: log.With(zap.String("service", "all"), zap.Bool("live", c.Prober.Live))})
	if err != nil {
		return nil, err
	}
	log.Info("pipeline done", zap.Bool("live", c.Prober.Live), zap.Duration("elapsed", time.Since(start)))
	return sum, nil
}
