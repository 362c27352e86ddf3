package prober

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/schedule"
	"github.com/gpsscan/gps/pkg/telemetry"
	"github.com/gpsscan/gps/pkg/wire"
)

// held is a bus message the prober holds while its work waits in the
// scheduler: it is acked (or dead-lettered, or nak'ed for a retry) once the
// scheduler says every probe of it is done (schedule.Config.Done).
type held struct {
	msg     jetstream.Msg
	targets bool   // a targets message, else a prediction
	phase   string // of its results
	n       int    // targets in the message
	refused []string
	large   []string // sweeps larger than a plan group
	refresh bool     // the refreshes of a cycle (refresh.go): no message
	own     bool     // the own seed's seeds or sweeps (own.go): no message
	cycle   int      // of the refreshes

	mu      sync.Mutex
	started bool  // some of its work was released
	failed  error // a probe or a publish failed: retried once done
	settled bool  // acked, dead-lettered or nak'ed
}

func (h *held) fail(err error) {
	h.mu.Lock()
	if h.failed == nil {
		h.failed = err
	}
	h.mu.Unlock()
}

// settle marks h settled and reports whether it was not before.
func (h *held) settle() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.settled {
		return false
	}
	h.settled = true
	return true
}

func (p *prober) hold(h *held) {
	p.heldMu.Lock()
	p.held[h] = struct{}{}
	if !h.targets {
		p.heldPreds++
	}
	p.heldMu.Unlock()
}

func (p *prober) unhold(h *held) {
	p.heldMu.Lock()
	if _, ok := p.held[h]; ok {
		delete(p.held, h)
		if !h.targets {
			p.heldPreds--
		}
	}
	p.heldMu.Unlock()
}

// heldNow is a snapshot of the messages held.
func (p *prober) heldNow() []*held {
	p.heldMu.Lock()
	defer p.heldMu.Unlock()
	out := make([]*held, 0, len(p.held))
	for h := range p.held {
		out = append(out, h)
	}
	return out
}

// done is the scheduler's Done: every probe of h's message is sent and its
// results stored, so it is acked, dead-lettered with the reason of what was
// refused, or nak'ed for a retry after a failure.
func (p *prober) done(token any) {
	h := token.(*held)
	if h.own {
		return // work of the prober's own policy: nothing to ack
	}
	if h.refresh {
		p.refreshDone(h.cycle)
		answered, missed := p.ref.counts()
		p.log.Info("cycle: refreshes probed", zap.Int("cycle", h.cycle), zap.Int("answered", answered),
			zap.Int("missed", missed), zap.Uint64("gone_total", p.st.Gone.Load()))
		return
	}
	if !h.settle() {
		return // released on stop
	}
	p.unhold(h)
	ctx := p.hctx
	h.mu.Lock()
	failed := h.failed
	h.mu.Unlock()
	if failed != nil {
		p.retry(h.msg, "probe", failed) // released at once when stopping
		return
	}
	if h.targets {
		defer p.st.Targets.Add(1)
	} else {
		defer p.st.Predictions.Add(1)
	}
	p.st.Skipped.Store(uint64(p.sched.Stats().Dropped))
	switch {
	case len(h.large) > 0:
		reason := fmt.Errorf("refused %d of %d targets %w (/%d, not swept): %s", len(h.large), h.n, ErrTooLarge, p.c.Step, sample(h.large))
		if len(h.refused) > 0 {
			reason = fmt.Errorf("%w; and %d %w (not probed): %s", reason, len(h.refused), ErrRefused, sample(h.refused))
		}
		p.log.Warn("targets refused", zap.String("subject", h.msg.Subject()), zap.Int("too_large", len(h.large)), zap.Int("refused", len(h.refused)),
			zap.Strings("first", h.large[:min(len(h.large), 5)]))
		p.deadLetter(ctx, h.msg, reason)
		p.st.TooLarge.Add(uint64(len(h.large)))
		p.st.Refused.Add(uint64(len(h.refused)))
	case len(h.refused) > 0:
		reason := fmt.Errorf("refused %d of %d targets %w (not probed): %s", len(h.refused), h.n, ErrRefused, sample(h.refused))
		p.log.Warn("targets refused", zap.String("subject", h.msg.Subject()), zap.Int("refused", len(h.refused)),
			zap.Strings("first", h.refused[:min(len(h.refused), 5)]))
		p.deadLetter(ctx, h.msg, reason)
		p.st.Refused.Add(uint64(len(h.refused)))
	default:
		p.ack(ctx, h.msg)
	}
}

// keepHeldAlive tells the server that each message held is still being
// worked on (InProgress): targets every keepAlive, predictions every
// third of Config.PredAckWait (a prober holds up to maxHeldPredictions of
// them, so they are kept alive less often, and a crashed prober's come
// back later), so none is redelivered to another prober after its
// consumer's AckWait while it waits in the scheduler.
func (p *prober) keepHeldAlive(ctx context.Context) {
	t := time.NewTicker(keepAlive)
	defer t.Stop()
	var predsAlive time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		preds := time.Since(predsAlive) >= p.c.PredAckWait/3-keepAlive/2
		if preds {
			predsAlive = time.Now()
		}
		for _, h := range p.heldNow() {
			h.mu.Lock()
			settled := h.settled
			h.mu.Unlock()
			if !settled && (h.targets || preds) {
				_ = h.msg.InProgress()
			}
		}
	}
}

// pull takes messages from c and hands each to push, until ctx ends. It
// pulls nothing while the scheduler holds maxPending items or more (memory
// stays bounded; the consumer's MaxAckPending bounds the messages). It
// takes what is waiting in batches that do not wait on the server, and
// when nothing is, waits for one message with a pull request that expires
// after pullWait. That request is never abandoned while the server may
// still answer it: on stop, what it brings is nak'ed at once for another
// prober. idle (if not nil) is true while that request waits: everything
// given before it was pushed.
func (p *prober) pull(ctx context.Context, c jetstream.Consumer, what string, push func(jetstream.Msg), idle *atomic.Bool) {
	for ctx.Err() == nil {
		if p.sched.Len() >= maxPending {
			select {
			case <-ctx.Done():
				return
			case <-time.After(pendingPause):
			}
			continue
		}
		got := 0
		batch, err := c.FetchNoWait(pullBatch)
		if err == nil {
			for msg := range batch.Messages() {
				got++
				push(msg)
			}
			err = batch.Error()
		}
		if err == nil && got == 0 {
			var msg jetstream.Msg
			if idle != nil {
				idle.Store(true)
			}
			msg, err = c.Next(jetstream.FetchMaxWait(pullWait))
			if idle != nil {
				idle.Store(false)
			}
			if err == nil {
				if ctx.Err() != nil {
					p.release(msg)
					return
				}
				push(msg)
			}
		}
		switch {
		case err == nil, ctx.Err() != nil:
		case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrNoMessages):
		default:
			p.log.Warn("pull messages", zap.String("stream", what), zap.Error(err))
			select { // do not spin on a persistent error
			case <-ctx.Done():
			case <-time.After(retryDelay):
			}
		}
	}
}

// send takes work from the scheduler in order of yield and probes it until
// ctx ends or the budget is spent; the work taken is finished with hctx.
func (p *prober) send(ctx, hctx context.Context) {
	for {
		if p.win.enter(ctx) != nil {
			return
		}
		ws, err := p.take(ctx)
		n := uint64(0)
		for _, w := range ws {
			n += w.Probes
		}
		p.win.taken(n)
		if p.own != nil {
			p.own.begin(len(ws))
		}
		if errors.Is(err, schedule.ErrBudget) {
			p.spent.Do(func() {
				p.log.Info("probe budget spent", zap.Uint64("budget", p.c.Budget), zap.Uint64("probes", p.st.Probes.Load()))
				p.st.BudgetSpent.Store(true)
				if p.onSpent != nil {
					p.onSpent()
				}
			})
			return
		}
		if err != nil {
			return
		}
		p.do(hctx, ws...)
		p.win.done(n)
		if p.own != nil {
			p.own.end(len(ws))
		}
	}
}

// drain, once the prober stops, naks every message none of whose work was
// released, finishes the work of the others (their probes are sent, their
// results stored, then they are acked) until hctx ends, and naks what is
// left then: nothing is lost, and a restart pushes it again.
func (p *prober) drain(hctx context.Context) {
	for _, h := range p.heldNow() {
		h.mu.Lock()
		idle := !h.started && !h.settled
		if idle {
			h.settled = true
		}
		h.mu.Unlock()
		if idle {
			p.unhold(h)
			p.release(h.msg)
		}
	}
	for hctx.Err() == nil && len(p.heldNow()) > 0 {
		w, ok, err := p.sched.TryNext(hctx)
		if err != nil || !ok {
			break
		}
		p.do(hctx, w)
	}
	for _, h := range p.heldNow() {
		if h.settle() {
			p.unhold(h)
			p.release(h.msg)
		}
	}
}

// take takes the next work and, for a lone sender (a world's: it answers at
// memory speed) after a single probe the single probes ready behind it (up
// to a batch of results, ending at the first chunk): they are probed and
// their results published together, then reported, and a publish round
// trip is not paid per probe. With several senders (live, where a probe
// may wait for the network) each takes one work at a time, so that the
// others go on meanwhile.
func (p *prober) take(ctx context.Context) ([]schedule.Work, error) {
	next := p.sched.Next
	if p.own != nil {
		next = p.own.next
	}
	w, err := next(ctx)
	if err != nil {
		return nil, err
	}
	ws := []schedule.Work{w}
	for p.c.Concurrency == 1 && w.Kind == schedule.Probe && len(ws) < wire.BatchResults {
		var ok bool
		if w, ok, err = p.sched.TryNext(ctx); err != nil || !ok {
			break
		}
		ws = append(ws, w)
	}
	return ws, nil
}

// do probes works, publishes what they found with the prober's probe count
// and reports their hits to the scheduler; then, in lockstep, waits for the
// predictions those results make.
func (p *prober) do(ctx context.Context, ws ...schedule.Work) {
	start := time.Now()
	res := p.newResults()
	hits := make([]int, len(ws))
	var errs []error
	found := false
	var seen [][]gps.Target // per work, every service it found: the own seed's policy learns them
	stamps := make([]uint64, len(ws))
	if p.own != nil {
		seen = make([][]gps.Target, len(ws))
	}
	for i, w := range ws {
		h := w.Token.(*held)
		h.mu.Lock()
		skip := h.settled // released on stop: its work is given back unprobed
		h.started = true
		h.mu.Unlock()
		if skip {
			errs = append(errs, nil)
			continue
		}
		stamp := p.sent.Add(w.Probes)
		stamps[i] = stamp
		var sink *[]gps.Target
		if p.own != nil {
			p.own.pol.Released(w)
			sink = &seen[i]
		}
		n, err := p.probeWork(ctx, w, res, h.phase, stamp, sink)
		p.probes(h.phase, w.Probes)
		if h.refresh && err == nil {
			err = p.ref.outcome(ctx, w.Target, n > 0, stamp)
		}
		hits[i] = n
		found = found || n > 0
		errs = append(errs, err)
	}
	ferr := res.flush(ctx)
	res.close()
	for i, w := range ws {
		if err := cmp.Or(errs[i], ferr); err != nil {
			w.Token.(*held).fail(err)
		}
		p.sched.Report(w, hits[i])
		if p.own != nil {
			if errs[i] != nil && w.Token.(*held).own {
				p.log.Warn("own seed: work failed, not retried", zap.Uint64("first", uint64(w.First)), zap.Uint16("port", w.Port), zap.Error(errs[i]))
			}
			p.own.learn(w, seen[i], stamps[i])
		}
	}
	if p.handleTime != nil {
		p.handleTime.Observe(time.Since(start).Seconds())
	}
	if found && ferr == nil && p.c.AwaitPredictions > 0 && !p.stopping.Load() {
		release := p.win.hold()
		p.await(ctx, res.async.LastSeq())
		release()
	}
}

// probeWork sends the probes of w and adds each service found to res (and,
// with sink, to *sink); it returns how many it found that were not found
// before (newHit).
func (p *prober) probeWork(ctx context.Context, w schedule.Work, res *results, phase string, stamp uint64, sink *[]gps.Target) (int, error) {
	hits := 0
	add := func(rw row.Row, port uint16, pr ipv4.Prefix, fresh int) error {
		hits += fresh
		if sink != nil {
			if a, err := row.ParseAddr(rw.IP); err == nil {
				*sink = append(*sink, gps.Target{Addr: a, Port: port})
			}
		}
		if err := res.add(ctx, rw, port, pr, phase, stamp); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		return nil
	}
	switch size := uint64(w.Last) - uint64(w.First) + 1; {
	case w.Kind == schedule.Probe:
		rw, ok, err := p.resp.Probe(ctx, w.Target.Addr, w.Target.Port)
		if err != nil {
			return 0, fmt.Errorf("probe: %w", err)
		}
		if ok {
			return hits, add(rw, w.Port, ipv4.Prefix{Addr: w.First, Bits: 32}, 1)
		}
		return hits, nil
	case w.Kind == schedule.Seed:
		found, err := p.seed(ctx, w)
		for _, rw := range found {
			port := uint16(rw.Port)
			if aerr := add(rw, port, ipv4.Prefix{Addr: w.First, Bits: 32}, p.newHit(rw, port)); aerr != nil {
				return hits, aerr
			}
		}
		return hits, err
	case size&(size-1) == 0 && uint64(w.First)%size == 0 && size == w.Probes:
		// A whole aligned chunk: one sweep of its prefix (live, its probes
		// go out together).
		pr := ipv4.Prefix{Addr: w.First, Bits: 32 - bits.TrailingZeros64(size)}
		var found []row.Row
		if _, err := p.resp.Sweep(ctx, pr.Addr, pr.Bits, w.Port, func(r row.Row) { found = append(found, r) }); err != nil {
			return 0, fmt.Errorf("sweep: %w", err)
		}
		for _, rw := range found {
			if err := add(rw, w.Port, pr, p.newHit(rw, w.Port)); err != nil {
				return hits, err
			}
		}
		return hits, nil
	}
	// A chunk cut by the budget or with addresses left out: one by one.
	for t := range w.Targets() {
		rw, ok, err := p.resp.Probe(ctx, t.Addr, t.Port)
		if err != nil {
			return hits, fmt.Errorf("probe: %w", err)
		}
		if ok {
			if err := add(rw, t.Port, ipv4.Prefix{Addr: t.Addr, Bits: 32}, p.newHit(rw, t.Port)); err != nil {
				return hits, err
			}
		}
	}
	return hits, nil
}

// newHit is 1 if the service rw a chunk found on port is new, 0 if it was
// probed as a single probe (a prediction) before: a chunk's yield counts
// the services it adds, as the replay's does, not the ones found again
// (they are still published).
func (p *prober) newHit(rw row.Row, port uint16) int {
	a, err := row.ParseAddr(rw.IP)
	if err == nil && p.sched.Sent(schedule.Target{Addr: a, Port: port}) {
		return 0
	}
	return 1
}

// await holds the sender until the predictions made from the results up to
// RESULTS sequence seq are in the scheduler: the predictor has acknowledged
// them (it acks a result after publishing its predictions), and this
// prober has pulled PREDICTIONS up to that stream's last message then, or
// the probers' shared consumer has delivered that far and this prober has
// taken in all it was given (the rest went to other probers). The
// replay updates its model at once; without this wait a simulated prober,
// which answers at memory speed, would run ahead of the pipeline. It gives
// up after Config.AwaitPredictions (logged at Debug, counted in
// Stats.LockstepGivenUp and gps_lockstep_given_up_total), or when the prober
// holds as many predictions as its consumer may deliver.
func (p *prober) await(ctx context.Context, seq uint64) {
	if seq == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, p.c.AwaitPredictions)
	defer cancel()
	pause := 100 * time.Microsecond
	sleep := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Millisecond)
		return true
	}
	giveUp := func(reason, why string, err error) {
		p.log.Debug("predictions not awaited", zap.String("why", why), zap.Uint64("results_seq", seq), zap.Error(err))
		p.st.LockstepGivenUp.Add(1)
		if p.m != nil {
			p.m.LockstepGivenUp.WithLabelValues(reason).Inc()
		}
	}
	if p.predictor == nil {
		c, err := p.bus.JS.Consumer(ctx, bus.StreamResults, PredictorDurable)
		if err != nil {
			giveUp(telemetry.LockstepError, "no predictor consumer", err)
			return
		}
		p.predictor = c
	}
	for {
		info, err := p.predictor.Info(ctx)
		if err != nil {
			giveUp(telemetry.LockstepError, "predictor consumer info", err)
			return
		}
		if info.AckFloor.Stream >= seq {
			break
		}
		if !sleep() {
			giveUp(telemetry.LockstepPredictorBehind, "the predictor is behind", ctx.Err())
			return
		}
	}
	if p.predStream == nil {
		s, err := p.bus.JS.Stream(ctx, bus.StreamPredictions)
		if err != nil {
			giveUp(telemetry.LockstepError, "no predictions stream", err)
			return
		}
		p.predStream = s
	}
	si, err := p.predStream.Info(ctx)
	if err != nil {
		giveUp(telemetry.LockstepError, "predictions stream info", err)
		return
	}
	last := si.State.LastSeq
	var elsewhere time.Time // since when the rest seems to have gone to other probers
	for p.predSeen.Load() < last {
		p.heldMu.Lock()
		full := p.heldPreds >= p.maxPreds
		p.heldMu.Unlock()
		if full {
			giveUp(telemetry.LockstepHeldLimit, "predictions held to the consumer's limit", nil)
			return
		}
		// Probers share the predictions consumer, so some of them may go
		// to another: once the consumer has delivered up to last and this
		// prober's pull has taken in all it was given, for sharedGrace on
		// end, the rest is another's.
		if p.sharedDelivered(ctx, last) {
			if elsewhere.IsZero() {
				elsewhere = time.Now()
			} else if time.Since(elsewhere) >= sharedGrace {
				return
			}
		} else {
			elsewhere = time.Time{}
		}
		if !sleep() {
			giveUp(telemetry.LockstepNotPulled, "predictions not pulled", ctx.Err())
			return
		}
	}
}

// sharedGrace is how long await lets the predictions consumer stand
// delivered past what it waits for, with this prober's pull idle, before
// it takes the rest to have gone to other probers.
const sharedGrace = 10 * time.Millisecond

// sharedDelivered reports whether the shared predictions consumer has
// delivered PREDICTIONS up to seq and this prober's pull waits with
// nothing left to push.
func (p *prober) sharedDelivered(ctx context.Context, seq uint64) bool {
	if p.predCons == nil || !p.predsIdle.Load() {
		return false
	}
	info, err := p.predCons.Info(ctx)
	return err == nil && info.Delivered.Stream >= seq && p.predsIdle.Load()
}
