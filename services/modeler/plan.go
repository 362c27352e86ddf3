package modeler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/internal/resultpipe"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// maxAsync bounds the publishes in flight before waiting for their acks
// (below the client's limit of stalled publishes).
const maxAsync = 1000

// PlanPrefix renders a plan group's prefix as "a.b.c.d/step".
func PlanPrefix(p gps.PlanRow) string {
	return row.FormatAddr(p.Prefix) + "/" + strconv.Itoa(p.Step)
}

// PlanTargets splits a plan into targets messages of at most per groups
// each, in plan order: message i carries Nats-Msg-Id "plan:<i>". Each
// sweep carries its prior: the group's seed count and, when seedFrac is
// known (> 0), the seed's addresses in the prefix. Each message carries
// the seed's hosts (seed, sorted, distinct) inside its prefixes, which its
// sweeps leave out.
func PlanTargets(plan []gps.PlanRow, per int, seedFrac float64, seed []uint32, t time.Time) []wire.Targets {
	var out []wire.Targets
	for lo := 0; lo < len(plan); lo += per {
		grp := plan[lo:min(lo+per, len(plan))]
		m := wire.Targets{V: wire.Version, Phase: wire.PhasePriors, Targets: make([]wire.Target, len(grp)), Time: t}
		var skip []uint32
		for j, g := range grp {
			m.Targets[j] = wire.Target{Prefix: PlanPrefix(g), Port: int(g.Port), Hits: g.Count, SeedProbes: seedFrac * float64(g.Cost())}
			last := uint64(g.Prefix) + g.Cost() - 1
			i, _ := slices.BinarySearch(seed, g.Prefix)
			for ; i < len(seed) && uint64(seed[i]) <= last; i++ {
				skip = append(skip, seed[i])
			}
		}
		slices.Sort(skip)
		for _, a := range slices.Compact(skip) {
			m.Skip = append(m.Skip, row.FormatAddr(a))
		}
		out = append(out, m)
	}
	return out
}

// seedHosts is the addresses of m's services, sorted and distinct.
func seedHosts(m *model.Model) []uint32 {
	var addrs []uint32
	m.Services(func(addr uint32, _ uint16) { addrs = append(addrs, addr) })
	slices.Sort(addrs)
	return slices.Compact(addrs)
}

// PlanOf is the priors plan of a seed-only model m with its rows: GPS's plan
// groups (gps.Plan) and, with extra, then streaming GPS's extra sweeps for
// the seed services no row explains (gps.Unexplained).
func PlanOf(m *model.Model, rows []model.ModelRow, step int, hitrate float64, extra bool) []gps.PlanRow {
	plan, more := planParts(m, rows, step, hitrate, extra)
	return append(plan, more...)
}

func planParts(m *model.Model, rows []model.ModelRow, step int, hitrate float64, extra bool) (plan, more []gps.PlanRow) {
	plan = gps.Plan(rows, step, hitrate)
	if !extra {
		return plan, nil
	}
	var seed []gps.Target
	m.Services(func(addr uint32, port uint16) { seed = append(seed, gps.Target{Addr: addr, Port: port}) })
	return plan, gps.Unexplained(rows, plan, seed, step, hitrate)
}

// plan computes the priors plan from m (the seed-only model, at RESULTS
// sequence seq), publishes it to TARGETS and records it under KeyPlan.
func (s *modeler) plan(ctx context.Context, m *model.Model, seq uint64) error {
	started := time.Now()
	cyc, inCycles, err := s.currentCycle(ctx)
	if err != nil {
		return err
	}
	rows := m.Rows(s.cfg.Hitrate)
	later := inCycles && cyc.N > 0
	gpsPlan, extra := planParts(m, rows, s.cfg.Step, s.cfg.Hitrate, !s.cfg.NoExtraSweeps && !later)
	seedFrac, skip, idPrefix := s.cfg.SeedFrac, seedHosts(m), "plan:"
	if later {
		// The model holds everything known, not a seed sample: the plan's
		// prior rests on the whole group. The extra sweeps explain the
		// cycle's own seed, whose hosts the sweeps leave out.
		seed, err := s.cycleSeed(ctx, cyc)
		if err != nil {
			return err
		}
		if !s.cfg.NoExtraSweeps {
			extra = gps.Unexplained(rows, gpsPlan, seed, s.cfg.Step, s.cfg.Hitrate)
		}
		seedFrac, skip, idPrefix = 1, targetAddrs(seed), fmt.Sprintf("plan@%d:", cyc.N)
	}
	plan := append(gpsPlan, extra...)
	now := time.Now().UTC()
	msgs := PlanTargets(plan, s.cfg.PlanBatch, seedFrac, skip, now)
	pub := newPublisher(s.Bus)
	subject := wire.TargetsSubject(wire.PhasePriors)
	var probes uint64
	for _, g := range plan {
		probes += g.Cost()
	}
	for i := range msgs {
		data, err := json.Marshal(&msgs[i])
		if err != nil {
			return fmt.Errorf("encode plan message %d: %w", i, err)
		}
		if err := pub.publish(ctx, subject, idPrefix+strconv.Itoa(i), data); err != nil {
			return fmt.Errorf("publish plan: %w", err)
		}
	}
	if err := pub.flush(ctx); err != nil {
		return fmt.Errorf("publish plan: %w", err)
	}
	rec, err := json.Marshal(wire.PlanDone{V: wire.Version, Groups: len(plan), ModelSeq: seq, Time: now})
	if err != nil {
		return fmt.Errorf("encode plan record: %w", err)
	}
	if err := s.Bus.Retry(ctx, "record plan", func(ctx context.Context) error {
		_, err := s.kv.Create(ctx, bus.KeyPlan, rec)
		return err
	}); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("record plan: %w", err)
	}
	if inCycles {
		if err := s.recordPlanCycle(ctx, cyc.N, now); err != nil {
			return err
		}
	}
	s.planned = true
	s.st.Planned.Store(true)
	s.st.PlanGroups.Store(int64(len(plan)))
	s.st.ExtraGroups.Store(int64(len(extra)))
	s.st.PlanMessages.Store(int64(len(msgs)))
	s.Log.Info("priors plan published", zap.Uint64("model_seq", seq), zap.Int("model_rows", len(rows)),
		zap.Int("groups", len(plan)), zap.Int("gps_groups", len(gpsPlan)), zap.Int("extra_groups", len(extra)), zap.Int("messages", len(msgs)), zap.Uint64("probes", probes),
		zap.Int("step", s.cfg.Step), zap.Float64("hitrate", s.cfg.Hitrate), zap.Duration("took", time.Since(started)))
	return nil
}

// replay rebuilds the model of RESULTS sequences 1..last in a new model.
func (s *modeler) replay(ctx context.Context, last uint64) (*model.Model, error) {
	started := time.Now()
	m := model.New()
	var seq uint64
	n := 0
	err := s.Bus.CatchUp(ctx, bus.StreamResults, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy},
		func(msg jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
			if md.Sequence.Stream > last {
				return false, nil
			}
			seq = md.Sequence.Stream
			// A bad message was dead-lettered whole by the live run:
			// skipped whole here too.
			if rs, err := resultpipe.DecodeMessage(msg.Data(), s.Policy); err == nil {
				for i := range rs {
					rs[i].ApplyTo(m) // as Apply does: gone results retract
					n++
				}
			}
			return seq < last, nil
		}, jetstream.PullMaxMessages(s.cfg.Fetch))
	if err != nil {
		return nil, fmt.Errorf("replay seed: %w", err)
	}
	s.Log.Info("seed model rebuilt from the stream", zap.Uint64("last_seq", last), zap.Uint64("seq", seq),
		zap.Int("results", n), zap.Duration("took", time.Since(started)))
	return m, nil
}

// publisher publishes asynchronously and checks every ack.
type publisher struct {
	b    *bus.Bus
	futs []pending
}

type pending struct {
	f       jetstream.PubAckFuture
	subject string
	id      string
}

func newPublisher(b *bus.Bus) *publisher { return &publisher{b: b} }

func (p *publisher) publish(ctx context.Context, subject, id string, data []byte) error {
	f, err := p.b.PublishAsync(ctx, &nats.Msg{Subject: subject, Data: data}, id)
	if err != nil {
		return err
	}
	p.futs = append(p.futs, pending{f, subject, id})
	if len(p.futs) >= maxAsync {
		return p.flush(ctx)
	}
	return nil
}

// flush waits for every ack; a publish that failed is published again,
// synchronously, retried while the cluster is unavailable (bus.Retry).
func (p *publisher) flush(ctx context.Context) error {
	if len(p.futs) == 0 {
		return nil
	}
	defer func() { p.futs = p.futs[:0] }()
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for _, x := range p.futs {
		select {
		case <-x.f.Ok():
			continue
		case err := <-x.f.Err():
			m := x.f.Msg()
			if _, err2 := p.b.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Data: m.Data}, x.id); err2 != nil {
				return fmt.Errorf("publish %s: %w", x.subject, errors.Join(err, err2))
			}
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return fmt.Errorf("publish %s: no ack from the server for a minute", x.subject)
		}
	}
	return nil
}
