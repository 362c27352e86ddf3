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
	"github.com/gpsscan/gps/pkg/row"
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
			fs.IntVar(&c.Cycles, "cycles", 0, "cycles of change after cycle 0, written as changes/cycle-NNNN.jsonl (docs/worlds.md); 0: the world does not change")
			fs.Float64Var(&c.Churn, "churn", 1, "scale of the rates of change of --cycles (1: the documented rates, 0: no change)")
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
					zap.Int("seed_hosts", w.Meta.SeedHosts), zap.Int("seed_services", w.Meta.SeedServices), zap.Int("cycles", c.Cycles))
				for _, cc := range w.Meta.Changes {
					log.Info("cycle written", zap.Int("cycle", cc.Cycle), zap.Int("services", cc.Services), zap.Int("added", cc.Added),
						zap.Int("gone", cc.Gone), zap.Int("moved", cc.Moved), zap.Int("changed", cc.Changed))
				}
				return nil
			}
		},
	}
}

// labZeros gives an explicit 0 on the command line its meaning where
// lab.Config reads a zero field as "the default": --hosts, --slash16s,
// --seed-frac and --ases 0 are errors, and --pseudo-frac, --noise-frac and
// --churn 0 mean none (a negative value in lab.Config). --cycles and
// --churn below 0 are errors too.
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
		case "cycles":
			if c.Cycles < 0 {
				errs = append(errs, usageErr("--cycles %d: want 0 or more", c.Cycles))
			}
		case "churn":
			switch {
			case c.Churn < 0:
				errs = append(errs, usageErr("--churn %v: want 0 or more", c.Churn))
			case c.Churn == 0:
				c.Churn = -1
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
			cycle := fs.Int("cycle", 0, "serve this cycle of a world generated with --cycles")
			every := fs.Duration("cycle-every", 0, "move to the next cycle this often (SIGHUP moves one cycle too); 0: only on SIGHUP")
			return func(ctx context.Context, log *zap.Logger) error {
				switch {
				case *world == "":
					return usageErr("need --world DIR")
				case *cycle < 0:
					return usageErr("--cycle %d: want 0 or more", *cycle)
				case *every < 0:
					return usageErr("--cycle-every %v: want 0 or more", *every)
				}
				log = log.With(zap.String("service", "lab"))
				tl, err := lab.OpenTimeline(*world)
				if err != nil {
					return err
				}
				if err := tl.Seek(*cycle); err != nil {
					if errors.Is(err, lab.ErrCycle) {
						return usageErr("--cycle %d: %v", *cycle, err)
					}
					return err
				}
				l, err := labserve.ServeRows(ctx, labRows(tl.Services()), labserve.Options{IdleTimeout: *idle}, log)
				if err != nil {
					return err
				}
				fmt.Printf("lab ready: %d services on %d addresses, cycle %d of %d (ctrl-c to stop)\n",
					len(l.Services()), l.Addresses(), tl.Cycle(), tl.Cycles())
				followCycles(ctx, tl, l, *every, log)
				return l.Close()
			}
		},
	}
}

// followCycles moves the lab to the next cycle of its world every every
// (0: never) and on each SIGHUP, until ctx ends; at the last cycle it
// stays. A move that fails is logged and the lab serves on as it was.
func followCycles(ctx context.Context, tl *lab.Timeline, l *labserve.Lab, every time.Duration, log *zap.Logger) {
	hup := onSIGHUP(ctx)
	var tick <-chan time.Time
	if every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		case <-hup:
		}
		if tl.Cycle() == tl.Cycles() {
			log.Info("lab at the last cycle, staying", zap.Int("cycle", tl.Cycle()))
			continue
		}
		cs, err := tl.Next()
		if err != nil {
			log.Error("lab cannot move to the next cycle", zap.Int("cycle", tl.Cycle()), zap.Error(err))
			continue
		}
		st, err := l.Update(labRows(tl.Services()))
		if err != nil {
			log.Error("lab cannot move to the next cycle", zap.Int("cycle", tl.Cycle()), zap.Error(err))
			continue
		}
		n := lab.CountChanges(cs)
		log.Info("lab moved to the next cycle", zap.Int("cycle", tl.Cycle()), zap.Int("services", tl.Len()),
			zap.Int("added", n.Added), zap.Int("gone", n.Gone), zap.Int("moved", n.Moved), zap.Int("changed", n.Changed),
			zap.Int("listeners_started", st.Started), zap.Int("listeners_stopped", st.Stopped), zap.Int("skipped", st.Skipped))
	}
}

func labRows(ss []row.Service) []row.Row {
	rows := make([]row.Row, len(ss))
	for i := range ss {
		rows[i] = ss[i].Row
	}
	return rows
}
