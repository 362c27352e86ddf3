// Package predictor is the GPS predictor service: it keeps its own replica
// of the model from every result on the RESULTS stream and, for every result
// of the priors or predicted phase, predicts that host's remaining services
// at once, publishing each new prediction with its probability and evidence
// to PREDICTIONS.
package predictor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/internal/resultpipe"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/features"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/telemetry"
	"github.com/gpsscan/gps/pkg/wire"
)

// Service is the name of the service: its durable consumer, its snapshot
// object and its dead-letter subject (gps.dlq.predictor).
const Service = "predictor"

const (
	progressInterval = 5 * time.Second
	tickInterval     = time.Second
	shutdownTimeout  = time.Minute
	gaugeInterval    = 5 * time.Second // model gauges
	// maxAsync bounds the publishes in flight before waiting for their acks
	// (below the client's limit of stalled publishes).
	maxAsync = 1000
)

// Deps are what Run needs.
type Deps struct {
	Config  Config
	Bus     *bus.Bus
	Log     *zap.Logger
	Stats   *Stats             // optional: counters to read while it runs
	Metrics *telemetry.Metrics // optional: results in, predictions out, latency, model gauges, consumer lag, handle time
	Ready   func()             // optional: called once the consumer is set up
}

// Stats are the predictor's counters; safe to read while Run runs.
type Stats struct {
	Results     atomic.Int64  // results applied to the model (a message may carry many)
	Bad         atomic.Int64  // messages dead-lettered, whole
	Redelivered atomic.Int64  // deliveries of messages already applied (acked and skipped)
	Predictions atomic.Int64  // predictions published (a republish after a restart counts again)
	Hosts       atomic.Int64  // hosts the predictor tracks
	Snapshots   atomic.Int64  // snapshots stored
	Seq         atomic.Uint64 // RESULTS stream sequence of the last message processed and acknowledged
	Resyncs     atomic.Int64  // consumer restarts after a gap in the deliveries
}

type predictor struct {
	cfg   Config
	b     *bus.Bus
	log   *zap.Logger
	st    *Stats
	store jetstream.ObjectStore

	state
	seq   uint64 // RESULTS sequence of the last message processed
	feats []features.ID

	pub         publisher
	acks        []pendingAck  // processed messages whose predictions are not yet acknowledged
	predictedAt []time.Time   // times of the results whose predictions are not yet acknowledged
	held        jetstream.Msg // processed and published, not yet acked (see flush)
	failed      error         // a publish failed: the state is ahead of the bus, never snapshot it

	ready        func()
	metrics      *telemetry.Metrics // nil: no metrics
	resultsIn    map[string]prometheus.Counter
	predsOut     map[string]prometheus.Counter
	deadLettered prometheus.Counter
	handleTime   prometheus.Observer
	lastGauges   time.Time

	snapSeq  uint64
	since    int
	lastSnap time.Time
	upload   chan error
	buf      *bytes.Buffer
}

// Run consumes RESULTS until ctx ends; it returns nil on a clean stop, after
// a last snapshot.
func Run(ctx context.Context, d Deps) error {
	cfg := d.Config.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if d.Bus == nil {
		return errors.New("run predictor: no bus")
	}
	log := d.Log
	if log == nil {
		log = zap.NewNop()
	}
	st := d.Stats
	if st == nil {
		st = &Stats{}
	}
	p := &predictor{cfg: cfg, b: d.Bus, log: log, st: st, buf: new(bytes.Buffer), pub: publisher{b: d.Bus},
		ready: d.Ready, metrics: d.Metrics}
	if m := d.Metrics; m != nil {
		m.Init(Service)
		p.resultsIn = make(map[string]prometheus.Counter)
		p.predsOut = make(map[string]prometheus.Counter)
		for _, ph := range telemetry.Phases() {
			p.resultsIn[ph] = m.ResultsIn.WithLabelValues(Service, ph)
			p.predsOut[ph] = m.PredictionsOut.WithLabelValues(ph)
		}
		p.deadLettered = m.DeadLettered.WithLabelValues(Service)
		p.handleTime = m.MessageHandle.WithLabelValues(Service)
	}
	if err := p.open(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	p.updateGauges(true)

	var lag prometheus.Gauge
	if d.Metrics != nil {
		lag = d.Metrics.ConsumerPending.WithLabelValues(Service, bus.StreamResults)
	}
	err := resultpipe.RunLoop(ctx, p.b, Service, lag, p.progress, p.loop)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	// Finish what was processed: publish its predictions and ack it, so the
	// last snapshot covers it; if that fails, the snapshot must not.
	if e := p.flush(sctx); e != nil {
		if p.upload != nil {
			p.uploadDone(<-p.upload) // an earlier state: still a good snapshot
		}
		if errors.Is(err, e) {
			return err
		}
		return errors.Join(err, e)
	}
	p.confirmAcks(sctx)
	if e := p.finalSnapshot(sctx); e != nil {
		err = errors.Join(err, e)
	}
	if err == nil {
		p.log.Info("predictor stopped", zap.Uint64("seq", p.seq), zap.Int64("results", p.st.Results.Load()),
			zap.Int64("predictions", p.st.Predictions.Load()))
	}
	return err
}

func (p *predictor) open(ctx context.Context) error {
	var err error
	if p.store, err = p.b.Snapshots(ctx); err != nil {
		return err
	}
	var st *state
	var seq uint64
	var found bool
	if err := p.b.Retry(ctx, "load snapshot", func(ctx context.Context) (err error) {
		st, seq, found, err = loadSnapshot(ctx, p.store)
		return err
	}); err != nil {
		return err
	}
	if found {
		ms := st.m.Stats()
		p.log.Info("snapshot loaded", zap.Uint64("seq", seq), zap.Int("hosts", len(st.hosts)),
			zap.Int("services", ms.Services), zap.Int("keys", ms.Keys))
	} else {
		st = &state{m: model.New(), hosts: make(map[uint32]*hostState)}
		p.log.Info("no snapshot: starting from the beginning of the stream")
	}
	p.state = *st
	p.seq, p.snapSeq, p.lastSnap = seq, seq, time.Now()
	p.st.Seq.Store(seq)
	p.st.Hosts.Store(int64(len(p.hosts)))
	return nil
}

// loop applies results in stream order, as the reader hands them on; it
// publishes and acknowledges whenever nothing more is waiting (and every
// maxAsync predictions), so a prediction never waits for a batch to fill.
func (p *predictor) loop(ctx context.Context) error {
	sub, err := resultpipe.Subscribe(ctx, p.b, Service, p.seq+1, p.cfg.Fetch, p.log)
	if err != nil {
		return err
	}
	if p.ready != nil {
		p.ready()
	}
	// On return: stop the reader and nak what it handed on and was not
	// handled (from cur's item next on); what was handled is published and
	// acked by Run's last flush.
	var cur *resultpipe.Chunk
	next := 0
	defer func() {
		sub.Stop()
		if n := sub.Release(cur, next); n > 0 {
			p.log.Info("released unapplied results", zap.Int("messages", n))
		}
	}()

	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for {
		var c *resultpipe.Chunk
		ok := true
		select {
		case c, ok = <-sub.Ordered():
		default:
			// Nothing waiting: publish, acknowledge, snapshot, then wait.
			if err := p.idle(ctx); err != nil {
				return err
			}
			select {
			case c, ok = <-sub.Ordered():
			case <-tick.C:
				continue
			case <-ctx.Done():
				return nil
			}
		}
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fetch results: %w", sub.Err)
		}
		cur, next = c, 0
		select {
		case <-c.Done:
		case <-ctx.Done():
			return nil
		}
		var gap bool
		if next, gap, err = sub.Apply(c, 0, &p.seq, func(it *resultpipe.Item) error { return p.handle(ctx, it) }); err != nil {
			return err
		}
		if gap {
			// Deliveries were lost (a server went away with them in
			// flight); they come back only after AckWait, and out of
			// order. Publish and ack what was handled, then read again
			// from the first result not handled.
			p.log.Warn("gap in the results delivered: reading again from the first missing one",
				zap.Uint64("seq", p.seq), zap.Uint64("delivered", c.Items[next].Seq))
			p.st.Resyncs.Add(1)
			if err := p.flush(ctx); err != nil {
				return err
			}
			sub.Stop()
			p.held = nil // the consumer is recreated: nothing to ack on the old one
			cur = nil
			if sub, err = resultpipe.Subscribe(ctx, p.b, Service, p.seq+1, p.cfg.Fetch, p.log); err != nil {
				return err
			}
			continue
		}
		cur = nil
		if len(p.acks) >= p.cfg.Fetch {
			// Under a steady flow: acknowledge (and snapshot) without waiting
			// for a pause, within the consumer's limit of pending acks.
			if err := p.idle(ctx); err != nil {
				return err
			}
		}
	}
}

// handle applies the results of one decoded message and publishes (without
// waiting) their predictions.
func (p *predictor) handle(ctx context.Context, it *resultpipe.Item) error {
	if it.NoMeta {
		p.log.Warn("message without jetstream metadata: ignored", zap.String("subject", it.Msg.Subject()), zap.Error(it.Err))
		return nil
	}
	seq := it.Seq
	if seq <= p.seq {
		p.st.Redelivered.Add(1)
		_ = it.Msg.Ack()
		return nil
	}
	if it.Err != nil {
		if err := p.b.DeadLetter(ctx, Service, it.Msg, it.Err); err != nil {
			if ctx.Err() != nil {
				return ctx.Err() // stopping: leave it to the next run
			}
			p.log.Error("dead-letter failed: bad results message skipped", zap.Uint64("seq", seq), zap.String("subject", it.Msg.Subject()),
				zap.NamedError("reason", it.Err), zap.Error(err))
		} else {
			p.log.Warn("bad results message dead-lettered", zap.Uint64("seq", seq), zap.String("subject", it.Msg.Subject()), zap.Error(it.Err))
			if p.deadLettered != nil {
				p.deadLettered.Inc()
			}
		}
		p.st.Bad.Add(1)
		p.seq = seq
		return nil
	}
	// Every result of the message in order, each predicted from the model
	// with the ones before it; the message counts as processed (p.seq, its
	// ack) only after the last.
	for i := range it.Results {
		r := &it.Results[i]
		n, err := p.apply(ctx, &r.Svc, r.Phase, seq)
		if err != nil {
			p.failed = err // the model has the result, the bus not all of its predictions
			return err
		}
		if c := p.resultsIn[r.Phase]; c != nil {
			c.Inc()
		}
		if n > 0 {
			p.predictedAt = append(p.predictedAt, r.Time)
		}
	}
	p.st.Results.Add(int64(len(it.Results)))
	p.acks = append(p.acks, pendingAck{msg: it.Msg, recv: it.Recv})
	p.seq = seq
	p.since += len(it.Results)
	return nil
}

// pendingAck is a processed message waiting for its predictions' acks.
type pendingAck struct {
	msg  jetstream.Msg
	recv time.Time // when the reader got it
}

// apply adds a service to the model and the host, and publishes the host's
// new predictions when the result is not of the seed; it returns how many.
func (p *predictor) apply(ctx context.Context, svc *row.Service, phase string, seq uint64) (int, error) {
	p.m.Add(svc)
	p.feats = p.m.Dict().Of(p.feats[:0], svc, false)
	h := p.hosts[svc.Addr]
	if h == nil {
		h = &hostState{}
		p.hosts[svc.Addr] = h
		p.st.Hosts.Add(1)
	}
	port := uint16(svc.Port)
	if i := slices.IndexFunc(h.found, func(f model.Found) bool { return f.Port == port }); i >= 0 {
		h.found[i].Feats = union(h.found[i].Feats, p.feats)
	} else {
		h.found = append(h.found, model.Found{Port: port, Feats: slices.Clone(p.feats)})
	}
	if phase == wire.PhaseSeed {
		return 0, nil
	}
	preds := p.m.Predict(h.found, p.cfg.Hitrate)
	if len(preds) == 0 {
		return 0, nil
	}
	n := 0
	ip := row.FormatAddr(svc.Addr)
	subject := wire.PredictionsSubject(phase)
	now := time.Now().UTC()
	for _, x := range preds {
		if slices.Contains(h.predicted, x.Port) {
			continue
		}
		data, err := json.Marshal(wire.Prediction{V: wire.Version, IP: ip, Port: int(x.Port), Probability: x.Hitrate,
			Evidence:     wire.Evidence{Port: int(x.Evidence.Port), Feature: p.m.Dict().String(x.Feat), Count: x.Count, Support: x.Support},
			ModelVersion: seq, Time: now})
		if err != nil {
			return n, fmt.Errorf("encode prediction: %w", err)
		}
		if err := p.pub.publish(ctx, subject, "pred:"+ip+":"+strconv.Itoa(int(x.Port)), phase, data); err != nil {
			return n, err
		}
		n++
		h.predicted = append(h.predicted, x.Port)
		if len(p.pub.futs) >= maxAsync {
			if err := p.flush(ctx); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// flush waits for the predictions published so far, then acknowledges the
// results that made them.
func (p *predictor) flush(ctx context.Context) error {
	if p.failed != nil {
		return p.failed
	}
	// Not cancelled with ctx: what was published is waited for (at most a
	// minute), so a stop never leaves the state ahead of the bus.
	n, err := p.pub.flush(context.WithoutCancel(ctx), p.predsOut)
	p.st.Predictions.Add(int64(n))
	if err != nil {
		p.failed = err
		return err
	}
	// The consumer's acks are cumulative: acking the message held so far
	// acknowledges everything before it; the newest is held unacked until
	// the next flush, or until idle confirms its ack (and so all of them).
	// A plain ack lost with a server that goes away is made good by the
	// next one.
	if len(p.acks) > 0 {
		if p.held != nil {
			if err := p.held.Ack(); err != nil {
				p.log.Debug("ack failed", zap.Error(err))
			}
		}
		p.held = p.acks[len(p.acks)-1].msg
	}
	if p.metrics != nil {
		now := time.Now()
		for _, a := range p.acks {
			p.handleTime.Observe(now.Sub(a.recv).Seconds())
		}
		for _, t := range p.predictedAt {
			p.metrics.PredictionLatency.Observe(max(0, now.Sub(t).Seconds()))
		}
	}
	clear(p.acks)
	p.acks = p.acks[:0]
	p.predictedAt = p.predictedAt[:0]
	p.st.Seq.Store(p.seq)
	return nil
}

// confirmAcks acks the held message and waits for the server to confirm it.
func (p *predictor) confirmAcks(ctx context.Context) {
	if p.held == nil {
		return
	}
	if err := bus.ConfirmAck(ctx, p.log, p.held); err != nil {
		p.log.Warn("ack not confirmed", zap.Error(err))
	}
	p.held = nil
}

// updateGauges sets the model gauges, every gaugeInterval (or now, with force).
func (p *predictor) updateGauges(force bool) {
	if p.metrics == nil || p.m == nil || !force && time.Since(p.lastGauges) < gaugeInterval {
		return
	}
	p.lastGauges = time.Now()
	ms := p.m.Stats()
	p.metrics.ModelKeys.Set(float64(ms.Keys))
	p.metrics.ModelHosts.Set(float64(ms.Hosts))
	p.metrics.ModelBytes.Set(float64(p.m.SizeInBytes()))
}

// idle flushes and, when due, stores a snapshot.
func (p *predictor) idle(ctx context.Context) error {
	if err := p.flush(ctx); err != nil {
		return err
	}
	p.confirmAcks(ctx)
	p.updateGauges(false)
	if p.seq != p.snapSeq && (p.since >= p.cfg.SnapshotEvery || time.Since(p.lastSnap) >= p.cfg.SnapshotInterval) {
		p.snapshot(ctx)
	}
	return nil
}

// snapshot encodes the state (everything processed is published) and
// stores it in the background; a snapshot still uploading defers this one.
func (p *predictor) snapshot(ctx context.Context) {
	if p.upload != nil {
		select {
		case err := <-p.upload:
			p.uploadDone(err)
		default:
			return
		}
	}
	p.buf.Reset()
	if err := encodeSnapshot(p.buf, p.seq, &p.state); err != nil {
		p.log.Error("snapshot failed", zap.Error(err))
		return
	}
	p.snapSeq, p.since, p.lastSnap = p.seq, 0, time.Now()
	data, seq, started := p.buf.Bytes(), p.seq, time.Now()
	ch := make(chan error, 1)
	p.upload = ch
	go func() {
		// Not cancelled with ctx: the last snapshot waits for this one.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		err := putSnapshot(uctx, p.store, data)
		if err == nil {
			p.log.Debug("snapshot stored", zap.Uint64("seq", seq), zap.Int("bytes", len(data)), zap.Duration("took", time.Since(started)))
		}
		ch <- err
	}()
}

func (p *predictor) uploadDone(err error) {
	p.upload = nil
	if err != nil {
		p.log.Warn("snapshot upload failed", zap.Error(err))
		p.snapSeq = 0
		return
	}
	p.st.Snapshots.Add(1)
}

func (p *predictor) finalSnapshot(ctx context.Context) error {
	if p.upload != nil {
		p.uploadDone(<-p.upload)
	}
	if p.seq == p.snapSeq {
		return nil
	}
	p.buf.Reset()
	if err := encodeSnapshot(p.buf, p.seq, &p.state); err != nil {
		return fmt.Errorf("final snapshot: %w", err)
	}
	if err := p.b.Retry(ctx, "final snapshot", func(ctx context.Context) error {
		return putSnapshot(ctx, p.store, p.buf.Bytes())
	}); err != nil {
		return fmt.Errorf("final snapshot: %w", err)
	}
	p.snapSeq = p.seq
	p.st.Snapshots.Add(1)
	p.log.Info("snapshot stored", zap.Uint64("seq", p.seq), zap.Int("bytes", p.buf.Len()))
	return nil
}

func (p *predictor) progress(stop <-chan struct{}) {
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	last, lastT := p.st.Results.Load(), time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			n := p.st.Results.Load()
			if n == last {
				continue
			}
			p.log.Info("progress", zap.Int64("results", n), zap.Int64("predictions", p.st.Predictions.Load()),
				zap.Int64("hosts", p.st.Hosts.Load()), zap.Int64("bad", p.st.Bad.Load()), zap.Uint64("seq", p.st.Seq.Load()),
				zap.Float64("results_per_second", float64(n-last)/now.Sub(lastT).Seconds()))
			last, lastT = n, now
		}
	}
}

// publisher publishes asynchronously and checks every ack.
type publisher struct {
	b      *bus.Bus
	futs   []jetstream.PubAckFuture
	phases []string // of each publish: the phase of the triggering result
}

func (p *publisher) publish(ctx context.Context, subject, id, phase string, data []byte) error {
	f, err := p.b.PublishAsync(ctx, &nats.Msg{Subject: subject, Data: data}, id)
	if err != nil {
		return err
	}
	p.futs = append(p.futs, f)
	p.phases = append(p.phases, phase)
	return nil
}

// flush waits for every ack; a publish that failed is published again,
// synchronously, retried while the cluster is unavailable (bus.Retry). It
// returns the number of messages published, and counts them by phase in
// out (when not nil).
func (p *publisher) flush(ctx context.Context, out map[string]prometheus.Counter) (int, error) {
	if len(p.futs) == 0 {
		return 0, nil
	}
	defer func() {
		clear(p.futs)
		p.futs = p.futs[:0]
		p.phases = p.phases[:0]
	}()
	count := func(n int) {
		for _, ph := range p.phases[:n] {
			if c := out[ph]; c != nil {
				c.Inc()
			}
		}
	}
	timeout := time.NewTimer(time.Minute)
	defer timeout.Stop()
	for i, f := range p.futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			m := f.Msg()
			if _, err2 := p.b.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Data: m.Data}, m.Header.Get(jetstream.MsgIDHeader)); err2 != nil {
				count(i)
				return i, fmt.Errorf("publish %s: %w", m.Subject, errors.Join(err, err2))
			}
		case <-ctx.Done():
			count(i)
			return i, fmt.Errorf("publish predictions: %w", ctx.Err())
		case <-timeout.C:
			count(i)
			return i, errors.New("publish predictions: no ack from the server for a minute")
		}
	}
	count(len(p.futs))
	return len(p.futs), nil
}

func union(a, b []features.ID) []features.ID {
	out := append(a, b...)
	slices.Sort(out)
	return slices.Compact(out)
}
