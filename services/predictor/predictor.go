// Package predictor is the GPS predictor service: it keeps its own replica
// of the model from every result on the RESULTS stream and, for every result
// of the priors or predicted phase, predicts that host's remaining services
// at once, publishing each new prediction with its probability and evidence
// to PREDICTIONS.
package predictor

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	shutdownTimeout = time.Minute
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

// Stats are the predictor's counters; safe to read while Run runs. Its Seq
// is of the last message processed and acknowledged.
type Stats struct {
	resultpipe.Stats
	Predictions atomic.Int64 // predictions published (a republish after a restart counts again)
	Hosts       atomic.Int64 // hosts the predictor tracks
}

type predictor struct {
	*resultpipe.Core // the consumer's position, acks, metrics, snapshots
	cfg              Config
	st               *Stats
	store            jetstream.ObjectStore
	ready            func()

	state
	feats []features.ID

	pub         publisher
	predsOut    map[string]prometheus.Counter
	acks        []pendingAck // processed messages whose predictions are not yet acknowledged
	predictedAt []time.Time  // times of the results whose predictions are not yet acknowledged
	failed      error        // a publish failed: the state is ahead of the bus, never snapshot it
}

// Run publishes the predictions of each result on RESULTS until ctx ends;
// it returns nil on a clean stop, after a last snapshot.
func Run(ctx context.Context, d Deps) error {
	st := cmp.Or(d.Stats, new(Stats))
	cfg, core, err := resultpipe.Start(Service, d.Config, d.Bus, d.Log, &st.Stats, d.Metrics)
	if err != nil {
		return err
	}
	p := &predictor{Core: core, cfg: cfg, st: st, pub: publisher{b: d.Bus}, ready: d.Ready}
	p.Snap.Encode = func(w io.Writer, seq uint64) error { return encodeSnapshot(w, seq, &p.state) }
	p.Snap.Put = func(ctx context.Context, data []byte) error { return putSnapshot(ctx, p.store, data) }
	if m := d.Metrics; m != nil {
		p.predsOut = make(map[string]prometheus.Counter)
		for _, ph := range telemetry.Phases() {
			p.predsOut[ph] = m.PredictionsOut.WithLabelValues(ph)
		}
	}
	if err := p.open(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	p.UpdateGauges(p.m, true)

	err = resultpipe.RunLoop(ctx, p.Bus, Service, p.Lag(), p.Progress(func() []zap.Field {
		return []zap.Field{zap.Int64("predictions", p.st.Predictions.Load()), zap.Int64("hosts", p.st.Hosts.Load())}
	}), p.loop)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	// Finish what was processed: publish its predictions and ack it, so the
	// last snapshot covers it; if that fails, the snapshot must not.
	if e := p.flush(sctx); e != nil {
		p.Snap.Wait() // an earlier state: still a good snapshot
		if errors.Is(err, e) {
			return err
		}
		return errors.Join(err, e)
	}
	p.ConfirmAcks(sctx)
	if e := p.Snap.Final(sctx, p.Bus, p.Seq); e != nil {
		err = errors.Join(err, e)
	}
	if err == nil {
		p.Log.Info("predictor stopped", zap.Uint64("seq", p.Seq), zap.Int64("results", p.st.Results.Load()),
			zap.Int64("predictions", p.st.Predictions.Load()))
	}
	return err
}

func (p *predictor) open(ctx context.Context) error {
	var err error
	if p.store, err = p.Bus.Snapshots(ctx); err != nil {
		return err
	}
	var st *state
	var seq uint64
	var found bool
	if err := p.Bus.Retry(ctx, "load snapshot", func(ctx context.Context) (err error) {
		st, seq, found, err = loadSnapshot(ctx, p.store)
		return err
	}); err != nil {
		return err
	}
	if found {
		ms := st.m.Stats()
		p.Log.Info("snapshot loaded", zap.Uint64("seq", seq), zap.Int("hosts", len(st.hosts)),
			zap.Int("services", ms.Services), zap.Int("keys", ms.Keys))
	} else {
		st = &state{m: model.New(), hosts: make(map[uint32]*hostState)}
		p.Log.Info("no snapshot: starting from the beginning of the stream")
	}
	p.state = *st
	p.SetSeq(seq)
	p.Snap.Reset(seq)
	p.st.Hosts.Store(int64(len(p.hosts)))
	return nil
}

// loop applies results in stream order, as the reader hands them on; it
// publishes and acknowledges whenever nothing more is waiting (and every
// maxAsync predictions), so a prediction never waits for a batch to fill.
// On return, what was handled is published and acked by Run's last flush.
func (p *predictor) loop(ctx context.Context) error {
	return p.Loop(ctx, resultpipe.LoopConfig{Fetch: p.cfg.Fetch, Ready: p.ready}, p)
}

// Applied acknowledges (and snapshots) under a steady flow without waiting
// for a pause, within the consumer's limit of pending acks.
func (p *predictor) Applied(ctx context.Context, _ []resultpipe.Item) error {
	if len(p.acks) >= p.cfg.Fetch {
		return p.Idle(ctx)
	}
	return nil
}

// Resync publishes and acks what was handled before the consumer is
// recreated.
func (p *predictor) Resync(ctx context.Context) error { return p.flush(ctx) }

// Apply applies the results of one decoded message and publishes (without
// waiting) their predictions.
func (p *predictor) Apply(ctx context.Context, it *resultpipe.Item) error {
	if p.Skip(it) {
		return nil
	}
	seq := it.Seq
	if it.Err != nil {
		if err := p.DeadLetter(ctx, it); err != nil {
			return err // stopping: leave it to the next run
		}
		p.Seq = seq
		return nil
	}
	// Every result of the message in order, each predicted from the model
	// with the ones before it; the message counts as processed (p.Seq, its
	// ack) only after the last.
	for i := range it.Results {
		r := &it.Results[i]
		if r.Cycle > p.cycle {
			p.newCycle(r.Cycle)
		}
		if r.Gone {
			p.retract(&r.Svc)
			continue
		}
		n, err := p.apply(ctx, &r.Svc, r.Phase, seq)
		if err != nil {
			p.failed = err // the model has the result, the bus not all of its predictions
			return err
		}
		if n > 0 {
			p.predictedAt = append(p.predictedAt, r.Time)
		}
	}
	p.CountResults(it.Results)
	p.acks = append(p.acks, pendingAck{msg: it.Msg, recv: it.Recv})
	p.Seq = seq
	return nil
}

// pendingAck is a processed message waiting for its predictions' acks.
type pendingAck struct {
	msg  jetstream.Msg
	recv time.Time // when the reader got it
}

// newCycle starts cycle n, read off its first result: every host is
// predicted afresh (the prober's scheduler forgot what it sent, and the
// world may have changed since), as the replay's continuous policy
// predicts each cycle with a scheduler of its own. What a host has found
// stays.
func (p *predictor) newCycle(n int) {
	p.cycle = n
	for _, h := range p.hosts {
		h.predicted, h.at = h.predicted[:0], 0
	}
}

// retract takes a gone service out of the model and its host; a host with
// nothing found left is forgotten (what was published for it too: it is
// predicted afresh if it comes back). A gone result predicts nothing.
func (p *predictor) retract(svc *row.Service) {
	p.m.Remove(svc.Addr, uint16(svc.Port))
	h := p.hosts[svc.Addr]
	if h == nil {
		return
	}
	if h.found = model.RemoveFound(h.found, uint16(svc.Port)); len(h.found) == 0 {
		delete(p.hosts, svc.Addr)
		p.st.Hosts.Add(-1)
	}
}

// apply adds a service to the model and the host, and publishes the host's
// new predictions when the result is not of the seed; it returns how many.
func (p *predictor) apply(ctx context.Context, svc *row.Service, phase string, seq uint64) (int, error) {
	isNew := p.m.Add(svc)
	p.feats = p.m.Dict().Of(p.feats[:0], svc, false)
	h := p.hosts[svc.Addr]
	if h == nil {
		h = &hostState{}
		p.hosts[svc.Addr] = h
		p.st.Hosts.Add(1)
	}
	h.found = model.AddFound(h.found, uint16(svc.Port), p.feats)
	if phase == wire.PhaseSeed {
		return 0, nil
	}
	if h.at > 0 && !isNew && !p.m.Stale(h.at) {
		return 0, nil // found again, and the model has not learned enough to change its predictions
	}
	h.at = p.m.Len()
	preds := p.m.Predict(h.found, p.cfg.Hitrate)
	if len(preds) == 0 {
		return 0, nil
	}
	n := 0
	ip := row.FormatAddr(svc.Addr)
	subject := wire.PredictionsSubject(phase)
	now := time.Now().UTC()
	for _, x := range preds {
		i := slices.IndexFunc(h.predicted, func(y published) bool { return y.port == x.Port })
		if i >= 0 && x.Hitrate <= h.predicted[i].p {
			continue
		}
		// A target is published again when its probability rises (a new
		// service of the host, or a model that learned more), so the prober
		// raises it in its queue, as the replay's scheduler does. The
		// message ID names the probability: a republish after a restart is
		// the same message.
		id := "pred:" + ip + ":" + strconv.Itoa(int(x.Port))
		if i >= 0 {
			id += "@" + strconv.FormatFloat(x.Hitrate, 'g', -1, 64)
		}
		if p.cycle > 0 {
			id += "#" + strconv.Itoa(p.cycle) // a cycle's predictions are new messages
		}
		data, err := json.Marshal(wire.Prediction{V: wire.Version, IP: ip, Port: int(x.Port), Probability: x.Hitrate,
			Evidence:     wire.Evidence{Port: int(x.Evidence.Port), Feature: p.m.Dict().String(x.Feat), Count: x.Count, Support: x.Support},
			ModelVersion: seq, Time: now})
		if err != nil {
			return n, fmt.Errorf("encode prediction: %w", err)
		}
		if err := p.pub.publish(ctx, subject, id, phase, data); err != nil {
			return n, err
		}
		n++
		if i >= 0 {
			h.predicted[i].p = x.Hitrate
		} else {
			h.predicted = append(h.predicted, published{port: x.Port, p: x.Hitrate})
		}
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
	if len(p.acks) > 0 {
		p.Hold(p.acks[len(p.acks)-1].msg) // acks every message before it
	}
	for _, a := range p.acks {
		p.Observe(a.recv)
	}
	if m := p.Metrics(); m != nil {
		now := time.Now()
		for _, t := range p.predictedAt {
			m.PredictionLatency.Observe(max(0, now.Sub(t).Seconds()))
		}
	}
	clear(p.acks)
	p.acks = p.acks[:0]
	p.predictedAt = p.predictedAt[:0]
	p.st.Seq.Store(p.Seq)
	return nil
}

// Idle flushes and, when due, stores a snapshot (everything processed is
// published then).
func (p *predictor) Idle(ctx context.Context) error {
	if err := p.flush(ctx); err != nil {
		return err
	}
	p.ConfirmAcks(ctx)
	p.m.Sync() // count now what is behind, not at the next prediction
	p.UpdateGauges(p.m, false)
	if p.Snap.Due(p.Seq, p.cfg.SnapshotEvery, p.cfg.SnapshotInterval) {
		p.Snap.Take(ctx, p.Seq, shutdownTimeout)
	}
	return nil
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
