package all

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/eval"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// cycler runs `gps all --world DIR --cycles N`: the seeder in cycles, each
// cycle of the pipeline answered from the same cycle of the world, and the
// next cycle begun once the pipeline is idle and the refreshes are probed.
type cycler struct {
	d    Deps
	c    Config
	st   *Stats
	base *eval.World
	inv  *eval.PipelineInventory
	next chan struct{} // lets the seeder begin the next cycle
	seq  uint64        // RESULTS read up to
	rows []eval.CycleRow
}

// cycleSeeder sets the seeder of a world run in cycles: cycle 0 imports the
// world's seed, later cycles walk the continuous policy's cyclic order over
// the world's space at its seed fraction, answered from the world's truth.
func cycleSeeder(c *Config, base *eval.World) {
	c.Seeder.Cycle = max(c.Seeder.Cycle, time.Second)
	c.Seeder.World = c.World
	c.Seeder.Seed = eval.ContinuousRandSeed(base)
	if c.Seeder.CycleSeedFrac == 0 {
		c.Seeder.CycleSeedFrac = eval.ContinuousSeedFrac(base, eval.CycleParams{})
	}
	c.Seeder.Allow = nil
	for i := 1; i <= base.NSlash16; i++ {
		c.Seeder.Allow = append(c.Seeder.Allow, fmt.Sprintf("127.%d.0.0/16", i))
	}
}

// run measures every cycle and advances, until cycle c.Cycles is measured.
func (y *cycler) run(ctx context.Context) error {
	stdout := y.d.Stdout
	if stdout == nil {
		stdout = io.Discard
	}
	var proberBefore uint64
	for k := 0; k <= y.c.Cycles; k++ {
		if err := y.waitCycle(ctx, k); err != nil {
			return err
		}
		var cyc bus.Cycle
		if _, err := y.d.Bus.GetJSON(ctx, bus.KeyCycle, &cyc); err != nil {
			return err
		}
		seedAddrs := y.base.SeedAddresses()
		if k > 0 {
			seedAddrs = uint64(float64(y.base.Addresses())*y.c.Seeder.CycleSeedFrac + 0.5)
		}
		seedProbes := seedAddrs * 65535
		proberNow := y.st.Prober.Probes.Load()
		if err := y.readResults(ctx, k, seedProbes, proberBefore); err != nil {
			return err
		}
		r, err := y.inv.Measure(k, seedProbes+proberNow-proberBefore, seedProbes)
		if err != nil {
			return err
		}
		proberBefore = proberNow
		y.rows = append(y.rows, r)
		fmt.Fprintf(stdout, "cycle %d: held %d, real coverage %.4f, coverage %.4f, stale %.2f%%, probes %d (seed %d), mean age %.3f\n",
			k, r.Held, r.CoverageReal, r.Coverage, 100*r.Stale, r.Probes, r.SeedProbes, r.MeanAge)
		y.d.Log.Info("cycle measured", zap.Int("cycle", k), zap.Float64("coverage_real", r.CoverageReal), zap.Uint64("probes", r.Probes))
		if k < y.c.Cycles {
			select {
			case y.next <- struct{}{}:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if y.c.Out == "" {
		return nil
	}
	if err := os.MkdirAll(y.c.Out, 0o755); err != nil {
		return fmt.Errorf("write cycles.csv: %w", err)
	}
	f, err := os.Create(filepath.Join(y.c.Out, "cycles.csv"))
	if err != nil {
		return fmt.Errorf("write cycles.csv: %w", err)
	}
	defer f.Close()
	if err := eval.WriteCyclesCSV(f, y.rows); err != nil {
		return fmt.Errorf("write cycles.csv: %w", err)
	}
	return f.Close()
}

// waitCycle waits until cycle k is planned, its refreshes probed, and the
// pipeline idle.
func (y *cycler) waitCycle(ctx context.Context, k int) error {
	for {
		var pc bus.PlanCycle
		ok, err := y.d.Bus.GetJSON(ctx, bus.KeyPlanCycle, &pc)
		if err != nil {
			return err
		}
		if ok && pc.N >= k && y.st.Prober.RefreshDone.Load() >= int64(k) {
			if err := y.d.Bus.WaitIdle(ctx, y.c.Quiet, Consumers(), y.d.Log); err != nil {
				return fmt.Errorf("wait for cycle %d: %w", k, err)
			}
			if y.st.Prober.RefreshDone.Load() >= int64(k) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// readResults reads RESULTS from where it stopped into the inventory, as
// cycle k's: a result's time in the cycle is its probe count (seed
// included), a seed's at the seed's middle.
func (y *cycler) readResults(ctx context.Context, k int, seedProbes, proberBefore uint64) error {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: y.seq + 1}
	err := y.d.Bus.CatchUp(ctx, bus.StreamResults, cfg, func(msg jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
		y.seq = md.Sequence.Stream
		rs, err := wire.DecodeResults(msg.Data())
		if err != nil {
			return true, nil
		}
		for _, r := range rs {
			a, err := row.ParseAddr(r.IP)
			if err != nil {
				continue
			}
			if r.Gone {
				y.inv.Gone(a, uint16(r.Port))
				continue
			}
			at := float64(seedProbes) / 2
			if r.Phase != wire.PhaseSeed && r.Probes > proberBefore {
				at = float64(seedProbes + r.Probes - proberBefore)
			}
			y.inv.Confirm(a, uint16(r.Port), k, at)
		}
		return true, nil
	}, jetstream.PullMaxMessages(256))
	if err != nil {
		return fmt.Errorf("read cycle %d results: %w", k, err)
	}
	return nil
}
