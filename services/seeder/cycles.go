package seeder

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// runCycles runs the seeder forever (Config.Cycle): each cycle seeds the
// next stretch of one cyclic order of the allowed space, records it in the
// control bucket (bus.Cycle at KeyCycle, then wire.SeedDone at KeySeed,
// which the modeler plans on), and waits for the next cycle. A restart
// resumes the cycle the bucket holds; a cycle's seed published again is
// de-duplicated by its message ids.
func runCycles(ctx context.Context, d *Deps) error {
	err := cycles(ctx, d)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil // stopped: the next start resumes the cycle from the bucket
	}
	return err
}

func cycles(ctx context.Context, d *Deps) error {
	c := d.Config
	pol, err := ipv4.LoadPolicy(c.Allow, c.AllowFile, c.BlockFile)
	if err != nil {
		return fmt.Errorf("run seeder cycles: %w", err)
	}
	var st bus.Cycle
	found, err := d.Bus.GetJSON(ctx, bus.KeyCycle, &st)
	if err != nil {
		return fmt.Errorf("run seeder cycles: %w", err)
	}
	if !found {
		seed, err := randSeed(c.Seed)
		if err != nil {
			return fmt.Errorf("run seeder cycles: %w", err)
		}
		st = bus.Cycle{V: wire.Version, Started: d.Now().UTC(), RandSeed: seed}
		if err := d.Bus.PutJSON(ctx, bus.KeyCycle, st); err != nil {
			return fmt.Errorf("run seeder cycles: %w", err)
		}
	}
	d.Log.Info("cycles", zap.Int("cycle", st.N), zap.Bool("resumed", found), zap.Bool("seed_done", st.SeedDone),
		zap.Uint64("walked", st.Walked), zap.Duration("every", c.Cycle))
	for {
		d.setCycleGauges(st)
		if !st.SeedDone {
			walked, err := seedCycle(ctx, d, pol, st)
			if err != nil {
				return fmt.Errorf("run seeder cycle %d: %w", st.N, err)
			}
			st.SeedDone, st.Walked = true, walked
			if err := d.Bus.PutJSON(ctx, bus.KeyCycle, st); err != nil {
				return fmt.Errorf("run seeder cycle %d: %w", st.N, err)
			}
			if err := markSeedDone(ctx, d); err != nil {
				return fmt.Errorf("run seeder cycle %d: %w", st.N, err)
			}
			d.Log.Info("cycle seeded", zap.Int("cycle", st.N), zap.Uint64("walked", st.Walked))
		}
		if err := d.nextCycle(ctx, st); err != nil {
			return err
		}
		st = bus.Cycle{V: wire.Version, N: st.N + 1, Started: d.Now().UTC(), Walked: st.Walked, RandSeed: st.RandSeed}
		if err := d.Bus.PutJSON(ctx, bus.KeyCycle, st); err != nil {
			return fmt.Errorf("run seeder cycle %d: %w", st.N, err)
		}
	}
}

// randSeed is seed, or a random one when 0.
func randSeed(seed int64) (int64, error) {
	if seed != 0 {
		return seed, nil
	}
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("pick a random seed: %w", err)
	}
	return int64(binary.LittleEndian.Uint64(b[:]) >> 1), nil
}

// nextCycle waits until the cycle after cur may begin: NextCycle, or the
// end of cur's Config.Cycle, or a receive on Advance, whichever first.
func (d *Deps) nextCycle(ctx context.Context, cur bus.Cycle) error {
	if d.NextCycle != nil {
		return d.NextCycle(ctx, cur)
	}
	wait := time.Until(cur.Started.Add(d.Config.Cycle))
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	case <-d.Advance:
		d.Log.Info("next cycle now, on request", zap.Int("cycle", cur.N), zap.Duration("early_by", time.Until(cur.Started.Add(d.Config.Cycle)).Round(time.Second)))
		return nil
	}
}

func (d *Deps) setCycleGauges(st bus.Cycle) {
	if d.Metrics == nil {
		return
	}
	d.Metrics.Cycles.Cycle.Set(float64(st.N))
	d.Metrics.Cycles.Started.Set(float64(st.Started.Unix()))
}

// seedCycle publishes cycle st.N's seed and returns where the cyclic order
// stands after it. Cycle 0 with --import imports that file instead (the
// order does not move).
func seedCycle(ctx context.Context, d *Deps, pol *ipv4.Policy, st bus.Cycle) (uint64, error) {
	c := d.Config
	if st.N == 0 && c.Import != "" {
		if err := runImport(ctx, d); err != nil {
			return 0, err
		}
		return st.Walked, nil
	}
	addrs, err := CycleSample(pol, st.RandSeed, st.Walked, cycleCount(pol, cmp.Or(c.CycleSeedFrac, c.SeedFrac)))
	if err != nil {
		return 0, err
	}
	if len(addrs) == 0 {
		return 0, fmt.Errorf("seed fraction %v of %d allowed addresses samples none", cmp.Or(c.CycleSeedFrac, c.SeedFrac), pol.Count())
	}
	if d.Metrics != nil {
		d.Metrics.Cycles.SeedTotal.Set(float64(len(addrs)))
		d.Metrics.Cycles.SeedDone.Set(0)
	}
	walked := st.Walked + uint64(len(addrs))
	if c.World != "" {
		return walked, seedFromWorld(ctx, d, st.N, addrs)
	}
	return walked, seedTargets(ctx, d, st.N, addrs)
}

// cycleCount is how many addresses a cycle seeds: round(frac x allowed).
func cycleCount(pol *ipv4.Policy, frac float64) uint64 {
	return uint64(math.Round(frac * float64(pol.Count())))
}

// CycleSample is the stretch [from, from+n) of the full-cycle permutation
// of pol's addresses picked by randSeed (wrapping around the space), sorted:
// successive cycles sample different addresses until the space is walked.
func CycleSample(pol *ipv4.Policy, randSeed int64, from, n uint64) ([]uint32, error) {
	total := pol.Count()
	perm, err := ipv4.NewCycle(total, randSeed)
	if err != nil {
		return nil, fmt.Errorf("sample cycle seed: %w", err)
	}
	n = min(n, total)
	it := perm.Shard(0, 1)
	next := func() uint64 {
		x, ok := it.Next()
		if !ok { // the whole space walked: the order starts again
			it = perm.Shard(0, 1)
			x, _ = it.Next()
		}
		return x
	}
	for range from % total {
		next()
	}
	out := make([]uint32, 0, n)
	for uint64(len(out)) < n {
		out = append(out, pol.Addr(next()))
	}
	slices.Sort(out)
	return out, nil
}

// seedFromWorld answers the seed's probes from the lab world's truth at
// cycle n: every service of a sampled address is a seed result (source
// "probe": it was scanned, not imported).
func seedFromWorld(ctx context.Context, d *Deps, n int, addrs []uint32) error {
	tl, err := lab.OpenTimeline(d.Config.World)
	if err != nil {
		return fmt.Errorf("seed from world: %w", err)
	}
	if err := tl.Seek(n); err != nil {
		return fmt.Errorf("seed from world: %w", err)
	}
	truth := tl.Services()
	slices.SortFunc(truth, func(a, b row.Service) int { return cmp.Or(cmp.Compare(a.Addr, b.Addr), cmp.Compare(a.Port, b.Port)) })
	rb := newResultBatcher(newPublisher(d.Bus, importWindow(d.Config.Batch)))
	rb.idPrefix = fmt.Sprintf("seed@%d", n)
	now := d.Now()
	for j, a := range addrs {
		i, _ := slices.BinarySearchFunc(truth, a, func(s row.Service, a uint32) int { return cmp.Compare(s.Addr, a) })
		for ; i < len(truth) && truth[i].Addr == a; i++ {
			res := wire.ResultFromRow(truth[i].Row, wire.PhaseSeed, now, "probe")
			res.Cycle = n
			if err := rb.add(ctx, &res, 0); err != nil {
				return fmt.Errorf("seed from world: %w", err)
			}
			d.Stats.Results.Add(1)
		}
		if d.Metrics != nil && j%1024 == 0 {
			d.Metrics.Cycles.SeedDone.Set(float64(j))
		}
	}
	if err := rb.flush(ctx); err != nil {
		return fmt.Errorf("seed from world: %w", err)
	}
	d.Stats.Targets.Add(uint64(len(addrs)) * 65535)
	if d.Metrics != nil {
		d.Metrics.Cycles.SeedDone.Set(float64(len(addrs)))
	}
	return nil
}

// seedTargets publishes the cycle's seed as targets (every port of every
// address) for the probers, whose results are the seed.
func seedTargets(ctx context.Context, d *Deps, n int, addrs []uint32) error {
	ports, err := parsePorts(d.Config.Ports)
	if err != nil {
		return err
	}
	pub := newPublisher(d.Bus, 64)
	subject := wire.TargetsSubject(wire.PhaseSeed)
	batch := make([]wire.Target, 0, d.Config.Batch)
	msgs := 0
	send := func() error {
		b, err := json.Marshal(wire.Targets{V: wire.Version, Phase: wire.PhaseSeed, Targets: batch, Time: d.Now()})
		if err != nil {
			return fmt.Errorf("encode targets: %w", err)
		}
		if err := pub.publish(ctx, subject, fmt.Sprintf("seedt@%d:%d", n, msgs), b, 1); err != nil {
			return err
		}
		msgs++
		d.Stats.Targets.Add(uint64(len(batch)))
		batch = batch[:0]
		return nil
	}
	for j, a := range addrs {
		for _, p := range ports {
			batch = append(batch, wire.Target{IP: ipv4.FormatAddr(a), Port: int(p)})
			if len(batch) == d.Config.Batch {
				if err := send(); err != nil {
					return fmt.Errorf("seed targets: %w", err)
				}
			}
		}
		if d.Metrics != nil {
			d.Metrics.Cycles.SeedDone.Set(float64(j + 1))
		}
	}
	if len(batch) > 0 {
		if err := send(); err != nil {
			return fmt.Errorf("seed targets: %w", err)
		}
	}
	if err := pub.flush(ctx); err != nil {
		return fmt.Errorf("seed targets: %w", err)
	}
	// The seed is done when it is answered: a prober acks a targets
	// message once its results are stored, so the modeler, which plans on
	// the seed record, sees the whole seed of the cycle.
	d.Log.Info("cycle seed published: waiting for the probers", zap.Int("cycle", n), zap.Int("messages", msgs), zap.Uint64("last_seq", pub.maxSeq))
	err = d.Bus.WaitAcked(ctx, bus.StreamTargets, bus.ProberConsumer, pub.maxSeq, seedPoll, func(waited time.Duration, floor uint64) {
		d.Log.Info("waiting for the probers to answer the cycle's seed", zap.Int("cycle", n), zap.Uint64("last_seq", pub.maxSeq),
			zap.Uint64("ack_floor", floor), zap.Duration("waited", waited))
	})
	if err != nil {
		return fmt.Errorf("seed targets: %w", err)
	}
	return nil
}

// seedPoll is how often the seeder asks whether the probers answered a
// cycle's seed targets.
const seedPoll = 250 * time.Millisecond

// markSeedDone writes the seed record the modeler plans on: the RESULTS
// sequence the cycle's seed reached (with targets, once the probers have
// answered them).
func markSeedDone(ctx context.Context, d *Deps) error {
	s, err := d.Bus.JS.Stream(ctx, bus.StreamResults)
	if err != nil {
		return fmt.Errorf("mark seed done: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("mark seed done: %w", err)
	}
	done := wire.SeedDone{V: wire.Version, Results: int(d.Stats.Results.Load()), LastSeq: info.State.LastSeq, Time: d.Now().UTC()}
	return d.Bus.PutJSON(ctx, bus.KeySeed, done)
}
