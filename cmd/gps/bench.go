package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/atomicfile"
	"github.com/gpsscan/gps/pkg/scanbench"
)

func benchScannersCmd() command {
	return command{
		name:  "bench scanners",
		usage: "benchmark the SYN scanner against zmap and masscan in a throwaway network namespace (root)",
		flags: func(fs *flag.FlagSet) func(context.Context, *zap.Logger) error {
			c := scanbench.Config{}.WithDefaults()
			port := fs.Uint("port", uint(c.Port), "port scanned")
			rates := fs.String("rate", joinRates(c.Rates), "rate caps in packets per second, comma-separated; 0 is unlimited")
			scanners := fs.String("scanners", strings.Join(c.Scanners, ","), "scanners to run, comma-separated: gps, zmap, masscan")
			out := fs.String("out", "", "write the results as JSON to this file")
			fs.IntVar(&c.Targets, "targets", c.Targets, "addresses scanned: a power of two in 256..65536, from 198.19.0.0")
			fs.IntVar(&c.Open, "open", c.Open, "listeners among the targets (the hit rate's denominator)")
			fs.IntVar(&c.Runs, "runs", c.Runs, "runs of each scanner at each rate; the median is reported")
			fs.DurationVar(&c.Cooldown, "cooldown", c.Cooldown, "wait for replies after the last SYN (whole seconds for zmap and masscan)")
			fs.IntVar(&c.Batch, "batch", c.Batch, "gps: SYNs per sendmmsg and rate limiter burst")
			return func(ctx context.Context, log *zap.Logger) error {
				if job := os.Getenv(scanbench.HelperEnv); job != "" {
					// This process is the gps side of one run, inside the scanner namespace.
					return scanbench.RunHelper(ctx, job, os.Stdout, log)
				}
				if *port < 1 || *port > 65535 {
					return usageErr("--port %d out of range", *port)
				}
				c.Port = uint16(*port)
				var err error
				if c.Rates, err = parseRates(*rates); err != nil {
					return usageErr("--rate: %v", err)
				}
				c.Scanners = strings.Split(*scanners, ",")
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("find this binary: %w", err)
				}
				c.Self = []string{exe, "bench", "scanners", "--log-level", "warn"}
				if err := c.Validate(); err != nil {
					return usageErr("%v", err)
				}
				rep, err := scanbench.Run(ctx, c, log)
				if err != nil {
					return err
				}
				if err := rep.WriteTable(os.Stdout); err != nil {
					return err
				}
				if *out != "" {
					if err := atomicfile.Write(*out, rep.WriteJSON); err != nil {
						return err
					}
					log.Info("results written", zap.String("out", *out))
				}
				return nil
			}
		},
	}
}

func joinRates(rs []float64) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = strconv.FormatFloat(r, 'f', -1, 64)
	}
	return strings.Join(s, ",")
}

func parseRates(s string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(s, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || math.IsNaN(r) || math.IsInf(r, 0) {
			return nil, fmt.Errorf("bad rate %q", f)
		}
		out = append(out, r)
	}
	return out, nil
}
