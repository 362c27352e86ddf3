package prober

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/ipv4"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/telemetry"
	"github.com/gpsscan/gps/pkg/wire"
)

// Timing of message handling.
const (
	retryDelay   = time.Second      // NakWithDelay after a transient error
	pullWait     = 2 * time.Second  // expiry of a pull request (and the longest wait for one on stop)
	ackWait      = 10 * time.Second // of the prober's consumers: a delivery lost in flight, or a crashed prober's messages, come back after this
	keepAlive    = 3 * time.Second  // InProgress on a message being handled, so it is never redelivered meanwhile
	asyncWindow  = 256              // result messages in flight before waiting for acks
	maxAcks      = 256              // acks waiting for their confirmation
	pendingEvery = 5 * time.Second  // consumer lag gauge refresh
)

// ErrRefused is the reason of a dead-lettered target outside the policy.
var ErrRefused = errors.New("outside the allow policy")

// ErrTooLarge is the reason of a dead-lettered sweep of a prefix shorter
// than Config.Step: no plan group is that large (a 0.0.0.0/0 would be
// millions of probes).
var ErrTooLarge = errors.New("larger than a plan group")

// Run consumes targets and predictions until ctx ends, then returns nil
// (also when ctx ends while it is still starting).
func Run(ctx context.Context, d Deps) error {
	err := run(ctx, d)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil
	}
	return err
}

func run(ctx context.Context, d Deps) error {
	c := d.Config.WithDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	if d.Bus == nil {
		return errors.New("run prober: no bus")
	}
	log := d.Log
	if log == nil {
		log = zap.NewNop()
	}
	if d.Stats == nil {
		d.Stats = new(Stats)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	pol, err := ipv4.LoadPolicy(c.Allow, c.AllowFile, c.BlockFile)
	if err != nil {
		return fmt.Errorf("run prober: %w", err)
	}
	log.Info("scan policy", zap.Stringer("allow", pol.Allow), zap.Uint64("allowed_addresses", pol.Count()))
	resp := d.Responder
	if resp == nil && c.Live {
		live, closeLive, err := newLive(c.LiveConfig, pol, d.Stats, log)
		if err != nil {
			return fmt.Errorf("run prober: %w", err)
		}
		defer closeLive()
		resp = live
	}
	if resp == nil {
		if c.World == "" {
			return fmt.Errorf("run prober: %w: no responder: this build only simulates a world (--world)", ErrConfig)
		}
		w, err := NewWorldResponder(c.World, WorldOptions{Latency: c.Latency, Loss: c.Loss, LossSeed: c.LossSeed})
		if err != nil {
			return fmt.Errorf("run prober: %w", err)
		}
		log.Info("world responder loaded", zap.String("world", c.World), zap.Int("services", w.Services()),
			zap.Duration("latency", c.Latency), zap.Float64("loss", c.Loss))
		resp = w
	}
	if err := d.Bus.Setup(ctx); err != nil {
		return fmt.Errorf("run prober: %w", err)
	}
	maxAck := max(64, 4*c.Concurrency)
	tc, err := d.Bus.Consumer(ctx, bus.StreamTargets, Durable, []string{wire.TargetsPrefix + ">"}, 0, maxAck, bus.WithAckWait(ackWait))
	if err != nil {
		return fmt.Errorf("run prober: %w", err)
	}
	pc, err := d.Bus.Consumer(ctx, bus.StreamPredictions, Durable, []string{wire.PredictionsPrefix + ">"}, 0, maxAck, bus.WithAckWait(ackWait))
	if err != nil {
		return fmt.Errorf("run prober: %w", err)
	}
	p := &prober{c: c, bus: d.Bus, log: log, st: d.Stats, resp: resp, pol: pol, now: d.Now, m: d.Metrics, ackSem: make(chan struct{}, maxAcks),
		probed: make(map[uint64]struct{}), swept: make(map[sweepKey]struct{}), sweeping: make(map[sweepKey]int)}
	if p.m != nil {
		p.m.Init(Durable)
		p.handleTime = p.m.MessageHandle.WithLabelValues(Durable)
		p.deadLettered = p.m.DeadLettered.WithLabelValues(Durable)
	}
	// The messages being handled outlive ctx by the drain timeout at most.
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	stopDrain := context.AfterFunc(ctx, func() {
		p.stopping.Store(true)
		log.Info("stopping: finishing the messages being handled", zap.Duration("drain_timeout", c.DrainTimeout))
		time.AfterFunc(c.DrainTimeout, hcancel)
	})
	defer stopDrain()
	g, gctx := newGroup(ctx)
	g.Go(func() error { return p.consume(gctx, hctx, tc, "targets", p.handleTargets) })
	g.Go(func() error { return p.consume(gctx, hctx, pc, "predictions", p.handlePrediction) })
	if p.m != nil {
		for _, s := range []string{bus.StreamTargets, bus.StreamPredictions} {
			gauge := p.m.ConsumerPending.WithLabelValues(Durable, s)
			g.Go(func() error {
				d.Bus.PollPending(gctx, s, Durable, pendingEvery, func(n uint64) { gauge.Set(float64(n)) })
				return nil
			})
		}
	}
	if d.Ready != nil {
		d.Ready()
	}
	err = g.Wait()
	p.ackWG.Wait()
	log.Info("prober stopped", zap.Uint64("probes", p.st.Probes.Load()), zap.Uint64("found", p.st.Found.Load()),
		zap.Uint64("refused", p.st.Refused.Load()), zap.Uint64("skipped", p.st.Skipped.Load()),
		zap.Uint64("released", p.st.Released.Load()))
	return err
}

type sweepKey struct {
	prefix uint32
	bits   int
	port   uint16
}

type prober struct {
	c    Config
	bus  *bus.Bus
	log  *zap.Logger
	st   *Stats
	resp Responder
	pol  *ipv4.Policy
	now  func() time.Time

	m            *telemetry.Metrics // nil: no metrics
	handleTime   prometheus.Observer
	deadLettered prometheus.Counter
	stopping     atomic.Bool // ctx ended: unfinished messages are nak'ed without delay
	ackSem       chan struct{}
	ackWG        sync.WaitGroup

	mu        sync.Mutex
	probed    map[uint64]struct{}   // (addr, port) probed by this prober
	swept     map[sweepKey]struct{} // (prefix, port) groups swept
	sweptBits [33]bool              // prefix lengths present in swept
	sweeping  map[sweepKey]int      // groups being swept now (by how many workers)
	sweepingN [33]int               // groups being swept now, by prefix length
}

// consume runs Concurrency workers on c until ctx ends; each message is
// handled with hctx, which outlives ctx by the drain timeout. Each worker
// pulls its next message itself (a pull request of one, expiring after
// pullWait), so the workers share no iterator and a lost pull costs at most
// pullWait. A pull is never abandoned while the server may still answer it:
// on stop, a worker waits for its pull to end and naks what it brings, so
// nothing is left buffered in the client or delivered to no one.
func (p *prober) consume(ctx, hctx context.Context, c jetstream.Consumer, what string, handle func(context.Context, jetstream.Msg)) error {
	var wg sync.WaitGroup
	for range p.c.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				msg, err := c.Next(jetstream.FetchMaxWait(pullWait))
				switch {
				case err == nil && ctx.Err() != nil:
					p.release(msg)
					return
				case err == nil:
					start := time.Now()
					stop := keepAliveWhile(msg)
					handle(hctx, msg)
					stop()
					if p.handleTime != nil {
						p.handleTime.Observe(time.Since(start).Seconds())
					}
				case ctx.Err() != nil:
					return
				case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
				default:
					p.log.Warn("pull message", zap.String("stream", what), zap.Error(err))
					select { // do not spin on a persistent error
					case <-ctx.Done():
					case <-time.After(retryDelay):
					}
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// done reports whether (addr, port) was probed, or lies in a swept group.
func (p *prober) done(addr uint32, port uint16) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.probed[svcKey(addr, port)]; ok {
		return true
	}
	for bits := range p.sweptBits {
		if p.sweptBits[bits] {
			if _, ok := p.swept[sweepKey{ipv4.Prefix{Addr: addr, Bits: bits}.First(), bits, port}]; ok {
				return true
			}
		}
	}
	return false
}

// beingSwept reports whether (addr, port) lies in a group being swept now:
// its sweep will probe it (or, failing, be handled again), so a live
// prediction of it need not be probed too. (A world's sweeps take no time:
// there the check would only move results between phases.)
func (p *prober) beingSwept(addr uint32, port uint16) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for bits, n := range p.sweepingN {
		if n > 0 && p.sweeping[sweepKey{ipv4.Prefix{Addr: addr, Bits: bits}.First(), bits, port}] > 0 {
			return true
		}
	}
	return false
}

// startSweep marks a group as being swept until the returned func is called.
func (p *prober) startSweep(k sweepKey) (end func()) {
	p.mu.Lock()
	p.sweeping[k]++
	p.sweepingN[k.bits]++
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		if p.sweeping[k]--; p.sweeping[k] == 0 {
			delete(p.sweeping, k)
		}
		p.sweepingN[k.bits]--
		p.mu.Unlock()
	}
}

// sweptAlready reports whether a sweep of pr on port is covered by one done.
func (p *prober) sweptAlready(pr ipv4.Prefix, port uint16) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for bits := 0; bits <= pr.Bits; bits++ {
		if p.sweptBits[bits] {
			if _, ok := p.swept[sweepKey{ipv4.Prefix{Addr: pr.Addr, Bits: bits}.First(), bits, port}]; ok {
				return true
			}
		}
	}
	return false
}

// work is what a message did, applied to the memory once its results are
// acknowledged (a failed publish must not mark its targets as done).
type work struct {
	probed []uint64
	swept  []sweepKey
}

func (p *prober) remember(w *work) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range w.probed {
		p.probed[k] = struct{}{}
	}
	for _, k := range w.swept {
		p.swept[k] = struct{}{}
		p.sweptBits[k.bits] = true
	}
}

// results publishes the results of one message, in batches
// (wire.ResultBatch): a batch goes when it is full, when its first result
// has waited wire.BatchDelay (a timer: a probe may take seconds, and the
// services found before it must not wait for it), and at the end of the
// message (flush). Its Nats-Msg-Id is "res:<ip>:<port>" of its first
// result, and for more than one ":<results>:<hash>" (wire.ResultBatch.ID):
// a message handled again after a failed publish makes the same batches
// when they filled up the same way, and the server drops them; when a
// batch was cut by time instead, its results are stored twice, which the
// consumers take as they take a service found twice (the model merges an
// (ip, port) it has, the predictor predicts a port of a host once).
type results struct {
	p     *prober
	phase string

	mu    sync.Mutex // the worker adds, the timer may send
	async *bus.Async
	batch wire.ResultBatch
	timer *time.Timer
	err   error // of a send by the timer: the next add or flush returns it
	n     uint64
}

func (p *prober) newResults(phase string) *results {
	return &results{p: p, async: p.bus.Async(asyncWindow), phase: phase}
}

// add publishes a found service, unless the policy refuses its address
// (checked again on receipt) or it is not what was probed.
func (r *results) add(ctx context.Context, rw row.Row, wantPort uint16, in ipv4.Prefix) error {
	a, err := rw.Validate()
	if err != nil || rw.Port != int(wantPort) || !in.Contains(a) || !r.p.pol.Allowed(a) {
		r.p.log.Warn("responder answer dropped", zap.String("ip", rw.IP), zap.Int("port", rw.Port),
			zap.Stringer("probed", in), zap.Error(err))
		return nil
	}
	res := wire.ResultFromRow(rw, r.phase, r.p.now(), "probe")
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	ok, err := r.batch.Add(&res)
	if err != nil {
		return err
	}
	if !ok { // past the batch's bytes: send it, and start the next with res
		if err := r.send(ctx); err != nil {
			return err
		}
		if _, err := r.batch.Add(&res); err != nil {
			return err
		}
	}
	r.n++
	r.p.log.Debug("service found", zap.String("ip", rw.IP), zap.Int("port", rw.Port), zap.String("phase", r.phase))
	if r.batch.Full() {
		return r.send(ctx)
	}
	if r.batch.Len() == 1 {
		r.arm(ctx)
	}
	return nil
}

// arm starts the wait of a new batch's first result.
func (r *results) arm(ctx context.Context) {
	if r.timer == nil {
		r.timer = time.AfterFunc(wire.BatchDelay, func() { r.sendDue(ctx) })
		return
	}
	r.timer.Reset(wire.BatchDelay)
}

// sendDue sends the batch if it has waited long enough (it may have been
// sent full meanwhile, and a new one started).
func (r *results) sendDue(ctx context.Context) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil && r.batch.Due(time.Now()) {
		r.err = r.send(ctx)
	}
}

// send publishes the batch; r.mu is held.
func (r *results) send(ctx context.Context) error {
	id := r.batch.ID("res")
	return r.async.Publish(ctx, wire.ResultsSubject(r.phase), id, r.batch.Take())
}

// flush sends what is batched and waits until every result is stored.
func (r *results) flush(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopTimer()
	if r.err != nil {
		return r.err
	}
	if r.batch.Len() > 0 {
		if err := r.send(ctx); err != nil {
			return err
		}
	}
	if err := r.async.Flush(ctx); err != nil {
		return err
	}
	r.p.st.Found.Add(r.n)
	return nil
}

// close stops the timer, and drops what a message given up had batched
// (it is retried: that is found again).
func (r *results) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopTimer()
	r.batch = wire.ResultBatch{}
}

func (r *results) stopTimer() {
	if r.timer != nil {
		r.timer.Stop()
	}
}

// retry naks msg after a transient error (nothing is remembered as done),
// for a retry after retryDelay; when the prober is stopping, at once, for
// another prober.
func (p *prober) retry(msg jetstream.Msg, what string, err error) {
	if p.stopping.Load() {
		p.release(msg)
		return
	}
	p.st.Retried.Add(1)
	p.log.Warn("message retried", zap.String("what", what), zap.String("subject", msg.Subject()), zap.Error(err))
	if nerr := msg.NakWithDelay(retryDelay); nerr != nil {
		p.log.Warn("nak", zap.Error(nerr))
	}
}

// keepAliveWhile tells the server msg is still being handled every
// keepAlive (InProgress), so it is not redelivered after ackWait, until stop
// is called.
func keepAliveWhile(msg jetstream.Msg) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock() // t is set before the first tick reads it
	t = time.AfterFunc(keepAlive, func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			_ = msg.InProgress()
			t.Reset(keepAlive)
		}
	})
	mu.Unlock()
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}

// release naks a message the prober will not finish because it stops.
func (p *prober) release(msg jetstream.Msg) {
	p.st.Released.Add(1)
	p.log.Debug("message released on stop", zap.String("subject", msg.Subject()))
	if err := msg.Nak(); err != nil {
		p.log.Warn("nak", zap.String("subject", msg.Subject()), zap.Error(err))
	}
}

// deadLetter moves a message that must not be used to the dead letters.
// If that fails while the bus is unavailable, the message is nak'ed to be
// tried again; the bus gives up after a few deliveries, or at once when the
// dead letter is refused for good, and terminates it (logged once here).
func (p *prober) deadLetter(ctx context.Context, msg jetstream.Msg, reason error) {
	if err := p.bus.DeadLetter(ctx, Durable, msg, reason); err != nil {
		if errors.Is(err, bus.ErrDeadLetterLost) {
			p.log.Error("dead letter lost: message terminated", zap.String("subject", msg.Subject()), zap.Error(err))
			return
		}
		p.retry(msg, "dead-letter", err)
		return
	}
	if p.deadLettered != nil {
		p.deadLettered.Inc()
	}
}

// ack acknowledges msg and has the server confirm it, retrying while the
// cluster is unavailable: an ack lost with a server that goes away would
// leave the message to AckWait and a second probe. The confirmation is
// waited for in the background (at most maxAcks at once), off the worker's
// path; Run waits for them all before it returns. The effect is done: the
// ack is not cancelled by a stop; if the server never confirms it, a plain
// ack goes out with the connection's last flush.
func (p *prober) ack(ctx context.Context, msg jetstream.Msg) {
	p.ackSem <- struct{}{}
	p.ackWG.Add(1)
	go func() {
		defer func() {
			<-p.ackSem
			p.ackWG.Done()
		}()
		if err := bus.ConfirmAck(ctx, p.log, msg); err != nil {
			p.log.Warn("ack not confirmed", zap.String("subject", msg.Subject()), zap.Error(err))
		}
	}()
}

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
