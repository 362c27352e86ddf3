package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/labserve"
)

func labGenCmd() command {
	return command{
		name:  "lab gen",
		usage: "generate a synthetic Internet in 127.0.0.0/8 (truth, seed, pfx2as, meta)",
		flags: func(fs *flag.FlagSet) func(context.Context, *zap.Logger) error {
			c := lab.Config{}.WithDefaults()
			out := fs.String("out", "", "directory to write truth.jsonl, seed.jsonl, pfx2as.tsv and meta.json into")
			fs.Int64Var(&c.Seed, "seed", c.Seed, "random seed; the same seed and sizes give the same world")
			fs.IntVar(&c.Hosts, "hosts", c.Hosts, "responsive hosts in the world")
			fs.IntVar(&c.Slash16s, "slash16s", c.Slash16s, "number of /16s of 127.0.0.0/8 the world spans (1..254)")
			fs.Float64Var(&c.SeedFrac, "seed-frac", c.SeedFrac, "fraction of the addresses sampled into the seed")
			fs.IntVar(&c.ASes, "ases", c.ASes, "number of autonomous systems")
			fs.Float64Var(&c.PseudoFrac, "pseudo-frac", c.PseudoFrac, "fraction of hosts that answer on hundreds of ports (middleboxes); 0: none")
			fs.Float64Var(&c.NoiseFrac, "noise-frac", c.NoiseFrac, "fraction of hosts with random extra services; 0: none")
			return func(ctx context.Context, log *zap.Logger) error {
				if *out == "" {
					return usageErr("need --out DIR")
				}
				if err := labZeros(fs, &c); err != nil {
					return err
				}
				if err := c.Validate(); err != nil {
					return usageErr("%v", err)
				}
				w, err := lab.Generate(c)
				if err != nil {
					return err
				}
				if err := w.Write(*out); err != nil {
					return err
				}
				log.Info("world written", zap.String("dir", *out), zap.Int("hosts", w.Meta.Hosts), zap.Int("services", w.Meta.Services),
					zap.Int("seed_hosts", w.Meta.SeedHosts), zap.Int("seed_services", w.Meta.SeedServices))
				return nil
			}
		},
	}
}

// labZeros gives an explicit 0 on the command line its meaning where
// lab.Config reads a zero field as "the default": --hosts, --slash16s,
// --seed-frac and --ases 0 are errors, and --pseudo-frac and --noise-frac 0
// mean none (a negative fraction in lab.Config).
func labZeros(fs *flag.FlagSet, c *lab.Config) error {
	var errs []error
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "hosts", "slash16s", "seed-frac", "ases":
			if f.Value.String() == "0" {
				errs = append(errs, usageErr("--%s 0: want more than 0", f.Name))
			}
		case "pseudo-frac":
			if c.PseudoFrac == 0 {
				c.PseudoFrac = -1
			}
		case "noise-frac":
			if c.NoiseFrac == 0 {
				c.NoiseFrac = -1
			}
		}
	})
	return errors.Join(errs...)
}

func labServeCmd() command {
	return command{
		name:  "lab serve",
		usage: "bring a world up as real TCP listeners on its 127.0.0.0/8 addresses (HTTP, TLS, SSH, banners)",
		flags: func(fs *flag.FlagSet) func(context.Context, *zap.Logger) error {
			world := fs.String("world", "", "world directory (truth.jsonl)")
			idle := fs.Duration("idle-timeout", 10*time.Second, "close a client connection idle this long")
			return func(ctx context.Context, log *zap.Logger) error {
				if *world == "" {
					return usageErr("need --world DIR")
				}
				l, err := labserve.Serve(ctx, *world, labserve.Options{IdleTimeout: *idle}, log.With(zap.String("service", "lab")))
				if err != nil {
					return err
				}
				fmt.Printf("lab ready: %d services on %d addresses (ctrl-c to stop)\n", len(l.Services()), l.Addresses())
				<-ctx.Done()
				return l.Close()
			}
		},
	}
}
