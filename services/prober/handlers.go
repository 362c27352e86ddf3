package prober

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/schedule"
	"github.com/gpsscan/gps/pkg/wire"
)

// probes counts probes sent for targets of a phase.
func (p *prober) probes(phase string, n uint64) {
	p.st.Probes.Add(n)
	if p.m != nil {
		p.m.ProbesSent.WithLabelValues(phase).Add(float64(n))
	}
}

// targetYield is the scheduler's yield of a single-address target: 1, above
// every prediction and sweep, as the seed goes before what it predicts.
const targetYield = 1

// pushTargets hands a targets message to the scheduler: each address a
// probe, each prefix a sweep (cut into chunks there) at its prior yield.
// What the policy refuses is kept for the message's dead letter, sent once
// the rest is probed.
func (p *prober) pushTargets(ctx context.Context, msg jetstream.Msg) {
	ts, err := wire.DecodeTargets(msg.Data())
	if err != nil {
		p.log.Warn("bad targets message", zap.String("subject", msg.Subject()), zap.Error(err))
		p.deadLetter(ctx, msg, err)
		p.st.Bad.Add(1)
		p.st.Targets.Add(1)
		return
	}
	// The seed's hosts, which the sweeps leave out (valid: DecodeTargets
	// checked them).
	skip := make([]uint32, 0, len(ts.Skip))
	for _, ip := range ts.Skip {
		a, _ := row.ParseAddr(ip)
		skip = append(skip, a)
	}
	seed := schedule.NewAddrs(skip)
	h := &held{msg: msg, targets: true, phase: ts.Phase, n: len(ts.Targets)}
	p.hold(h)
	p.sched.Open(h)
	defer p.sched.Close(h)
	for _, t := range ts.Targets {
		port := uint16(t.Port)
		if t.IP != "" {
			a, _ := row.ParseAddr(t.IP) // valid: DecodeTargets checked it
			if !p.pol.Allowed(a) {
				h.refused = append(h.refused, fmt.Sprintf("%s:%d", t.IP, t.Port))
				continue
			}
			p.sched.Push(schedule.Target{Addr: a, Port: port}, targetYield, h)
			continue
		}
		pr, _ := ipv4.ParsePrefix(t.Prefix) // valid: DecodeTargets checked it
		if pr.Bits < p.c.Step {
			h.large = append(h.large, fmt.Sprintf("%s:%d", t.Prefix, t.Port))
			continue
		}
		parts := []ipv4.Prefix{pr}
		if !p.pol.AllowedPrefix(pr) {
			parts = p.pol.Clip(pr)
			if len(parts) == 0 {
				h.refused = append(h.refused, fmt.Sprintf("%s:%d", t.Prefix, t.Port))
				continue
			}
			p.log.Info("sweep clipped to the allow policy", zap.String("prefix", t.Prefix), zap.Int("port", t.Port),
				zap.Int("parts", len(parts)))
		}
		// The prior: the seed's hits on its probes in the prefix, or
		// GPS's hitrate of the group (hits over its size) without them.
		// A part of a clipped sweep takes its share of both.
		size := float64(uint64(1) << (32 - pr.Bits))
		seedProbes := t.SeedProbes
		if seedProbes <= 0 {
			seedProbes = size
		}
		for _, part := range parts {
			share := float64(uint64(1)<<(32-part.Bits)) / size
			sw := schedule.Sweep{Prefix: part.First(), Bits: part.Bits, Port: port,
				PriorHits: float64(t.Hits) * share, PriorProbes: seedProbes * share}
			if in := seed.Within(part.First(), part.Last()); len(in) > 0 {
				sw.Skip = in
			}
			if err := p.sched.PushSweep(sw, h); err != nil {
				// Not a valid sweep after the checks above: a bug, not a
				// message to retry.
				h.refused = append(h.refused, fmt.Sprintf("%s:%d (%v)", part, t.Port, err))
			}
		}
	}
}

// pushPrediction hands a prediction to the scheduler at its probability.
func (p *prober) pushPrediction(ctx context.Context, msg jetstream.Msg) {
	if md, err := msg.Metadata(); err == nil {
		defer p.seen(md.Sequence.Stream) // once pushed (or settled): see await
	}
	pred, err := wire.DecodePrediction(msg.Data())
	if err != nil {
		p.log.Warn("bad prediction message", zap.String("subject", msg.Subject()), zap.Error(err))
		p.deadLetter(ctx, msg, err)
		p.st.Bad.Add(1)
		p.st.Predictions.Add(1)
		return
	}
	if pred.Probability <= p.c.Hitrate {
		p.ack(ctx, msg)
		p.st.BelowMin.Add(1)
		p.st.Predictions.Add(1)
		return
	}
	a, _ := row.ParseAddr(pred.IP) // valid: DecodePrediction checked it
	if !p.pol.Allowed(a) {
		p.log.Warn("prediction refused", zap.String("ip", pred.IP), zap.Int("port", pred.Port))
		p.deadLetter(ctx, msg, fmt.Errorf("refused prediction %s:%d %w (not probed)", pred.IP, pred.Port, ErrRefused))
		p.st.Refused.Add(1)
		p.st.Predictions.Add(1)
		return
	}
	if p.own != nil && p.own.pol.Pseudo(a) {
		// The own seed's policy: a pseudo-host gets no more predictions.
		p.ack(ctx, msg)
		p.st.Pseudo.Add(1)
		p.st.Predictions.Add(1)
		return
	}
	// Held bare: a prober holds up to maxHeldPredictions of them.
	h := &held{msg: bus.Bare(msg, p.bus.NC), phase: wire.PhasePredicted, n: 1}
	p.hold(h)
	p.sched.Push(schedule.Target{Addr: a, Port: uint16(pred.Port)}, pred.Probability, h)
}

// seen records that the PREDICTIONS message of stream sequence seq has been
// taken in.
func (p *prober) seen(seq uint64) {
	for {
		old := p.predSeen.Load()
		if seq <= old || p.predSeen.CompareAndSwap(old, seq) {
			return
		}
	}
}

// sample lists the first few of xs.
func sample(xs []string) string {
	const n = 5
	s := fmt.Sprint(xs[:min(len(xs), n)])
	if len(xs) > n {
		s += fmt.Sprintf(" and %d more", len(xs)-n)
	}
	return s
}
