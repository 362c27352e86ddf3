package prober

import (
	"context"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// probes counts probes sent for targets of a phase.
func (p *prober) probes(phase string, n uint64) {
	p.st.Probes.Add(n)
	if p.m != nil {
		p.m.ProbesSent.WithLabelValues(phase).Add(float64(n))
	}
}

func (p *prober) handleTargets(ctx context.Context, msg jetstream.Msg) {
	ts, err := wire.DecodeTargets(msg.Data())
	if err != nil {
		p.log.Warn("bad targets message", zap.String("subject", msg.Subject()), zap.Error(err))
		p.deadLetter(ctx, msg, err)
		p.st.Bad.Add(1)
		p.st.Targets.Add(1)
		return
	}
	res := p.newResults(ts.Phase)
	defer res.close()
	tr := &targetRun{p: p, res: res, phase: ts.Phase, local: make(map[uint64]bool)}
	// Live, the targets of a message go in parallel: a sweep waits for its
	// slowest probe (a silent service costs a timeout), and a plan message
	// holds many groups; the engine bounds the probes in flight. A world
	// answers at once, and in order the results reach the stream in the
	// plan's order, as in every other run of the same world.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(1)
	if p.c.Live {
		g.SetLimit(liveTargetsInFlight)
	}
	for _, t := range ts.Targets {
		g.Go(func() error { return tr.one(gctx, t) })
	}
	if err := g.Wait(); err != nil {
		p.retry(msg, "targets", err)
		return
	}
	w, refused := &tr.w, tr.refused
	if err := res.flush(ctx); err != nil {
		p.retry(msg, "publish", err)
		return
	}
	p.remember(w)
	// The counters move after the results are stored and the ack or dead
	// letter is sent: who polls them sees their effect.
	defer p.st.Targets.Add(1)
	if large := tr.large; len(large) > 0 {
		reason := fmt.Errorf("refused %d of %d targets %w (/%d, not swept): %s", len(large), len(ts.Targets), ErrTooLarge, p.c.Step, sample(large))
		if len(refused) > 0 {
			reason = fmt.Errorf("%w; and %d %w (not probed): %s", reason, len(refused), ErrRefused, sample(refused))
		}
		p.log.Warn("targets refused", zap.String("subject", msg.Subject()), zap.Int("too_large", len(large)), zap.Int("refused", len(refused)),
			zap.Strings("first", large[:min(len(large), 5)]))
		p.deadLetter(ctx, msg, reason)
		p.st.TooLarge.Add(uint64(len(large)))
		p.st.Refused.Add(uint64(len(refused)))
		return
	}
	if len(refused) > 0 {
		reason := fmt.Errorf("refused %d of %d targets %w (not probed): %s", len(refused), len(ts.Targets), ErrRefused, sample(refused))
		p.log.Warn("targets refused", zap.String("subject", msg.Subject()), zap.Int("refused", len(refused)),
			zap.Strings("first", refused[:min(len(refused), 5)]))
		p.deadLetter(ctx, msg, reason)
		p.st.Refused.Add(uint64(len(refused)))
		return
	}
	p.ack(ctx, msg)
}

// liveTargetsInFlight bounds the targets of one message probed at once.
const liveTargetsInFlight = 32

// targetRun is the handling of one targets message.
type targetRun struct {
	p     *prober
	res   *results
	phase string

	mu      sync.Mutex
	local   map[uint64]bool // (addr, port) taken by this message: repeats inside it are skipped
	w       work
	refused []string
	large   []string // sweeps larger than a plan group
}

// one probes or sweeps one target; an error is worth another try of the
// whole message.
func (tr *targetRun) one(ctx context.Context, t wire.Target) error {
	p := tr.p
	port := uint16(t.Port)
	if t.IP != "" {
		a, _ := row.ParseAddr(t.IP) // valid: DecodeTargets checked it
		if !p.pol.Allowed(a) {
			tr.refuse(fmt.Sprintf("%s:%d", t.IP, t.Port))
			return nil
		}
		k := svcKey(a, port)
		tr.mu.Lock()
		repeat := tr.local[k]
		tr.local[k] = true
		tr.mu.Unlock()
		if repeat || p.done(a, port) {
			p.st.Skipped.Add(1)
			return nil
		}
		rw, ok, err := p.resp.Probe(ctx, a, port)
		if err != nil {
			return fmt.Errorf("probe: %w", err)
		}
		p.probes(tr.phase, 1)
		tr.mu.Lock()
		tr.w.probed = append(tr.w.probed, k)
		tr.mu.Unlock()
		if ok {
			if err := tr.res.add(ctx, rw, port, ipv4.Prefix{Addr: a, Bits: 32}); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
		}
		return nil
	}
	pr, _ := ipv4.ParsePrefix(t.Prefix) // valid: DecodeTargets checked it
	if pr.Bits < p.c.Step {
		tr.mu.Lock()
		tr.large = append(tr.large, fmt.Sprintf("%s:%d", t.Prefix, t.Port))
		tr.mu.Unlock()
		return nil
	}
	parts := []ipv4.Prefix{pr}
	if !p.pol.AllowedPrefix(pr) {
		parts = p.pol.Clip(pr)
		if len(parts) == 0 {
			tr.refuse(fmt.Sprintf("%s:%d", t.Prefix, t.Port))
			return nil
		}
		p.log.Info("sweep clipped to the allow policy", zap.String("prefix", t.Prefix), zap.Int("port", t.Port),
			zap.Int("parts", len(parts)))
	}
	for _, part := range parts {
		if p.sweptAlready(part, port) {
			p.st.Skipped.Add(1)
			continue
		}
		var found []row.Row
		end := p.startSweep(sweepKey{part.First(), part.Bits, port})
		probes, err := p.resp.Sweep(ctx, part.Addr, part.Bits, port, func(r row.Row) { found = append(found, r) })
		end()
		if err != nil {
			return fmt.Errorf("sweep: %w", err)
		}
		p.probes(tr.phase, probes)
		tr.mu.Lock()
		tr.w.swept = append(tr.w.swept, sweepKey{part.First(), part.Bits, port})
		tr.mu.Unlock()
		for _, rw := range found {
			if err := tr.res.add(ctx, rw, port, part); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
		}
	}
	return nil
}

func (tr *targetRun) refuse(t string) {
	tr.mu.Lock()
	tr.refused = append(tr.refused, t)
	tr.mu.Unlock()
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

func (p *prober) handlePrediction(ctx context.Context, msg jetstream.Msg) {
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
	port := uint16(pred.Port)
	if !p.pol.Allowed(a) {
		p.log.Warn("prediction refused", zap.String("ip", pred.IP), zap.Int("port", pred.Port))
		p.deadLetter(ctx, msg, fmt.Errorf("refused prediction %s:%d %w (not probed)", pred.IP, pred.Port, ErrRefused))
		p.st.Refused.Add(1)
		p.st.Predictions.Add(1)
		return
	}
	if p.done(a, port) || p.c.Live && p.beingSwept(a, port) {
		p.ack(ctx, msg)
		p.st.Skipped.Add(1)
		p.st.Predictions.Add(1)
		return
	}
	rw, ok, err := p.resp.Probe(ctx, a, port)
	if err != nil {
		p.retry(msg, "probe", err)
		return
	}
	p.probes(wire.PhasePredicted, 1)
	res := p.newResults(wire.PhasePredicted)
	defer res.close()
	if ok {
		if err := res.add(ctx, rw, port, ipv4.Prefix{Addr: a, Bits: 32}); err != nil {
			p.retry(msg, "publish", err)
			return
		}
	}
	if err := res.flush(ctx); err != nil {
		p.retry(msg, "publish", err)
		return
	}
	p.remember(&work{probed: []uint64{svcKey(a, port)}})
	p.ack(ctx, msg)
	p.st.Predictions.Add(1)
}
