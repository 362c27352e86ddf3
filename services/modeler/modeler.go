// Package modeler is the GPS modeler service: it keeps the co-occurrence
// model of every result on the RESULTS stream, snapshots it to the snapshot
// store so a restart resumes exactly where the snapshot ends, and, once the
// seed is complete, publishes the priors scanning plan to TARGETS.
package modeler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/internal/resultpipe"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/model"
	"github.com/gpsscan/gps/pkg/telemetry"
	"github.com/gpsscan/gps/pkg/wire"
)

// Service is the name of the service: its durable consumer, its snapshot
// object and its dead-letter subject (gps.dlq.modeler).
const Service = "modeler"

const (
	fetchWait        = 2 * time.Second
	progressInterval = 5 * time.Second
	tickInterval     = time.Second
	shutdownTimeout  = time.Minute
	gaugeInterval    = 5 * time.Second // model gauges
)

// Deps are what Run needs.
type Deps struct {
	Config  Config
	Bus     *bus.Bus
	Log     *zap.Logger
	Stats   *Stats             // optional: counters to read while it runs
	Metrics *telemetry.Metrics // optional: results in, dead letters, model gauges, consumer lag, handle time
	Ready   func()             // optional: called once the consumer is set up
}

// Stats are the modeler's counters; safe to read while Run runs.
type Stats struct {
	Results      atomic.Int64  // results applied to the model (a message may carry many)
	Bad          atomic.Int64  // messages dead-lettered, whole
	Redelivered  atomic.Int64  // deliveries of messages already applied (acked and skipped)
	Snapshots    atomic.Int64  // snapshots stored
	PlanGroups   atomic.Int64  // groups (prefix sweeps) of the priors plan published, extra sweeps included
	ExtraGroups  atomic.Int64  // of which streaming GPS's extra sweeps
	PlanMessages atomic.Int64  // targets messages of the priors plan published
	Seq          atomic.Uint64 // RESULTS stream sequence of the last message processed
	Planned      atomic.Bool   // the priors plan is published (by this run or an earlier one)
	Resyncs      atomic.Int64  // consumer restarts after a gap in the deliveries
}

type modeler struct {
	cfg   Config
	b     *bus.Bus
	log   *zap.Logger
	st    *Stats
	kv    jetstream.KeyValue
	store jetstream.ObjectStore

	m      *model.Model
	seq    uint64        // RESULTS sequence of the last message processed
	newest jetstream.Msg // the last message applied
	held   jetstream.Msg // applied, not yet acked (see ackApplied)

	ready        func()
	metrics      *telemetry.Metrics // nil: no metrics
	resultsIn    map[string]prometheus.Counter
	deadLettered prometheus.Counter
	handleTime   prometheus.Observer
	lastGauges   time.Time

	seed      *wire.SeedDone
	planned   bool
	lastCheck time.Time // of the consumer, for a seed whose last messages are gone

	snapSeq  uint64 // sequence the last stored (or storing) snapshot covers
	since    int    // results since that snapshot
	lastSnap time.Time
	upload   chan error // the snapshot upload in flight, if any
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
		return errors.New("run modeler: no bus")
	}
	log := d.Log
	if log == nil {
		log = zap.NewNop()
	}
	st := d.Stats
	if st == nil {
		st = &Stats{}
	}
	s := &modeler{cfg: cfg, b: d.Bus, log: log, st: st, buf: new(bytes.Buffer), ready: d.Ready, metrics: d.Metrics}
	if m := d.Metrics; m != nil {
		m.Init(Service)
		s.resultsIn = make(map[string]prometheus.Counter)
		for _, p := range telemetry.Phases() {
			s.resultsIn[p] = m.ResultsIn.WithLabelValues(Service, p)
		}
		s.deadLettered = m.DeadLettered.WithLabelValues(Service)
		s.handleTime = m.MessageHandle.WithLabelValues(Service)
	}

	if err := s.open(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	s.updateGauges(true)

	var lag prometheus.Gauge
	if d.Metrics != nil {
		lag = d.Metrics.ConsumerPending.WithLabelValues(Service, bus.StreamResults)
	}
	err := resultpipe.RunLoop(ctx, s.b, Service, lag, s.progress, s.loop)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if e := s.finalSnapshot(sctx); e != nil {
		err = errors.Join(err, e)
	}
	if err == nil {
		s.log.Info("modeler stopped", zap.Uint64("seq", s.seq), zap.Int64("results", s.st.Results.Load()))
	}
	return err
}

// open loads the snapshot and the control state.
func (s *modeler) open(ctx context.Context) error {
	var err error
	if s.kv, err = s.b.Control(ctx); err != nil {
		return err
	}
	if s.store, err = s.b.Snapshots(ctx); err != nil {
		return err
	}
	var m *model.Model
	var seq uint64
	var found bool
	if err := s.b.Retry(ctx, "load snapshot", func(ctx context.Context) (err error) {
		m, seq, found, err = loadSnapshot(ctx, s.store, SnapshotObject)
		return err
	}); err != nil {
		return err
	}
	if found {
		ms := m.Stats()
		s.log.Info("snapshot loaded", zap.Uint64("seq", seq), zap.Int("hosts", ms.Hosts), zap.Int("services", ms.Services), zap.Int("keys", ms.Keys))
	} else {
		m = model.New()
		s.log.Info("no snapshot: starting from the beginning of the stream")
	}
	s.m, s.seq, s.snapSeq, s.lastSnap = m, seq, seq, time.Now()
	s.st.Seq.Store(seq)

	switch err := s.b.Retry(ctx, "get plan record", func(ctx context.Context) error {
		_, err := s.kv.Get(ctx, bus.KeyPlan)
		return err
	}); {
	case err == nil:
		s.planned = true
		s.st.Planned.Store(true)
	case errors.Is(err, jetstream.ErrKeyNotFound):
	default:
		return fmt.Errorf("get plan record: %w", err)
	}
	return nil
}

// loop applies results in stream order, as the reader hands them on.
func (s *modeler) loop(ctx context.Context) error {
	var w jetstream.KeyWatcher
	if err := s.b.Retry(ctx, "watch seed record", func(ctx context.Context) (err error) {
		w, err = s.kv.Watch(ctx, bus.KeySeed)
		return err
	}); err != nil {
		return fmt.Errorf("watch seed record: %w", err)
	}
	defer w.Stop()
	seedCh := w.Updates()

	sub, err := resultpipe.Subscribe(ctx, s.b, Service, s.seq+1, s.cfg.Fetch, s.log)
	if err != nil {
		return err
	}
	if s.ready != nil {
		s.ready()
	}
	// On return: stop the reader and nak what it handed on and was not
	// applied (from cur's item next on).
	var cur *resultpipe.Chunk
	next := 0
	defer func() {
		sub.Stop()
		s.confirmAcks(ctx)
		if n := sub.Release(cur, next); n > 0 {
			s.log.Info("released unapplied results", zap.Int("messages", n))
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
			// Nothing waiting: do the periodic work, then wait.
			if err := s.idle(ctx); err != nil {
				return err
			}
			select {
			case c, ok = <-sub.Ordered():
			case e, open := <-seedCh:
				if !open {
					seedCh = nil
				} else if err := s.onSeed(ctx, e); err != nil {
					return err
				}
				continue
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
		select {
		case e, open := <-seedCh:
			if !open {
				seedCh = nil
			} else if err := s.onSeed(ctx, e); err != nil {
				return err
			}
		default:
		}
		var gap bool
		if next, gap, err = sub.Apply(c, 0, &s.seq, func(it *resultpipe.Item) error { return s.apply(ctx, it) }); err != nil {
			return err
		}
		s.observe(c.Items[:next])
		s.ackApplied()
		if gap {
			// Deliveries were lost (a server went away with them in
			// flight); they come back only after AckWait, and out of
			// order. Read again from the first result not applied.
			s.log.Warn("gap in the results delivered: reading again from the first missing one",
				zap.Uint64("seq", s.seq), zap.Uint64("delivered", c.Items[next].Seq))
			s.st.Resyncs.Add(1)
			sub.Stop()
			s.held, s.newest = nil, nil // the consumer is recreated: nothing to ack on the old one
			cur = nil
			if sub, err = resultpipe.Subscribe(ctx, s.b, Service, s.seq+1, s.cfg.Fetch, s.log); err != nil {
				return err
			}
			continue
		}
		cur = nil
		sub.Put(c)
		if s.seq != s.snapSeq && time.Since(s.lastSnap) >= s.cfg.SnapshotInterval {
			s.snapshot(ctx)
		}
		s.updateGauges(false)
	}
}

// ackApplied acknowledges what was applied: the consumer's acks are
// cumulative, so acking the message held so far acknowledges everything
// before it; the newest applied message is held unacked until the next
// chunk, or until the loop is idle, when confirmAcks has the server confirm
// its ack (and so all of them). A plain ack lost with a server that goes
// away is made good by the next one.
func (s *modeler) ackApplied() {
	if s.newest == nil || s.newest == s.held {
		return
	}
	if s.held != nil {
		if err := s.held.Ack(); err != nil {
			s.log.Debug("ack failed", zap.Error(err))
		}
	}
	s.held = s.newest
}

// confirmAcks acks the held message and waits for the server to confirm it.
func (s *modeler) confirmAcks(ctx context.Context) {
	if s.held == nil {
		return
	}
	if err := bus.ConfirmAck(ctx, s.log, s.held); err != nil {
		s.log.Warn("ack not confirmed", zap.Error(err))
	}
	s.held = nil
}

// observe records the handling time of the messages applied.
func (s *modeler) observe(items []resultpipe.Item) {
	if s.handleTime == nil || len(items) == 0 {
		return
	}
	now := time.Now()
	for i := range items {
		s.handleTime.Observe(now.Sub(items[i].Recv).Seconds())
	}
}

// updateGauges sets the model gauges, every gaugeInterval (or now, with force).
func (s *modeler) updateGauges(force bool) {
	if s.metrics == nil || s.m == nil || !force && time.Since(s.lastGauges) < gaugeInterval {
		return
	}
	s.lastGauges = time.Now()
	ms := s.m.Stats()
	s.metrics.ModelKeys.Set(float64(ms.Keys))
	s.metrics.ModelHosts.Set(float64(ms.Hosts))
	s.metrics.ModelBytes.Set(float64(s.m.SizeInBytes()))
}

// apply applies one decoded message.
func (s *modeler) apply(ctx context.Context, it *resultpipe.Item) error {
	if it.NoMeta {
		s.log.Warn("message without jetstream metadata: ignored", zap.String("subject", it.Msg.Subject()), zap.Error(it.Err))
		return nil
	}
	seq := it.Seq
	if seq <= s.seq {
		// A redelivery of a message already applied.
		s.st.Redelivered.Add(1)
		_ = it.Msg.Ack()
		return nil
	}
	if !s.planned {
		if s.seed == nil && pastSeed(it) {
			// A result of a later phase: the seed record may be on its way.
			if err := s.getSeed(ctx); err != nil {
				return err
			}
		}
		if s.seed != nil && !s.planned && s.seq <= s.seed.LastSeq && seq > s.seed.LastSeq {
			// This message is past the seed: the model is the seed-only one.
			if err := s.plan(ctx, s.m, s.seq); err != nil {
				return err
			}
		}
	}
	if it.Err != nil {
		if err := s.b.DeadLetter(ctx, Service, it.Msg, it.Err); err != nil {
			if ctx.Err() != nil {
				return ctx.Err() // stopping: leave it to the next run
			}
			s.log.Error("dead-letter failed: bad results message skipped", zap.Uint64("seq", seq), zap.String("subject", it.Msg.Subject()),
				zap.NamedError("reason", it.Err), zap.Error(err))
		} else {
			s.log.Warn("bad results message dead-lettered", zap.Uint64("seq", seq), zap.String("subject", it.Msg.Subject()), zap.Error(it.Err))
			if s.deadLettered != nil {
				s.deadLettered.Inc()
			}
		}
		s.st.Bad.Add(1)
	} else {
		// Every result of the message, before its sequence counts as
		// applied: a snapshot never holds part of a message.
		for i := range it.Results {
			r := &it.Results[i]
			s.m.Add(&r.Svc)
			if c := s.resultsIn[r.Phase]; c != nil {
				c.Inc()
			}
		}
		s.st.Results.Add(int64(len(it.Results)))
		s.since += len(it.Results)
		s.newest = it.Msg // acked cumulatively: see ackApplied
	}
	s.seq = seq
	s.st.Seq.Store(seq)
	if s.seed != nil && !s.planned && seq == s.seed.LastSeq {
		if err := s.plan(ctx, s.m, seq); err != nil {
			return err
		}
	}
	if s.since >= s.cfg.SnapshotEvery {
		s.snapshot(ctx)
	}
	return nil
}

// pastSeed reports whether a message holds a result of a later phase than
// the seed.
func pastSeed(it *resultpipe.Item) bool {
	for i := range it.Results {
		if it.Results[i].Phase != wire.PhaseSeed {
			return true
		}
	}
	return false
}

// idle runs when no message is waiting: interval snapshots and the check for
// a seed whose last messages never arrive.
func (s *modeler) idle(ctx context.Context) error {
	s.confirmAcks(ctx)
	s.updateGauges(false)
	if s.seq != s.snapSeq && time.Since(s.lastSnap) >= s.cfg.SnapshotInterval {
		s.snapshot(ctx)
	}
	if s.seed != nil && !s.planned && s.seq < s.seed.LastSeq && time.Since(s.lastCheck) >= tickInterval {
		s.lastCheck = time.Now()
		// Messages up to the seed's last may have been deleted from the
		// stream: when the consumer has nothing left, the model is complete.
		ci, err := s.b.JS.Consumer(ctx, bus.StreamResults, Service)
		if err != nil {
			return nil
		}
		info, err := ci.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			s.log.Warn("stream ends before the seed's last sequence: planning from what there is",
				zap.Uint64("seq", s.seq), zap.Uint64("seed_last_seq", s.seed.LastSeq))
			return s.plan(ctx, s.m, s.seq)
		}
	}
	return nil
}

// onSeed takes a new seed record from the watcher.
func (s *modeler) onSeed(ctx context.Context, e jetstream.KeyValueEntry) error {
	if e == nil || e.Operation() != jetstream.KeyValuePut {
		return nil
	}
	return s.setSeed(ctx, e)
}

// getSeed reads the seed record, if there is one.
func (s *modeler) getSeed(ctx context.Context) error {
	var e jetstream.KeyValueEntry
	err := s.b.Retry(ctx, "get seed record", func(ctx context.Context) (err error) {
		e, err = s.kv.Get(ctx, bus.KeySeed)
		return err
	})
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get seed record: %w", err)
	}
	return s.setSeed(ctx, e)
}

// setSeed records that the seed is done, and makes the plan when the model
// stands at or past the seed's last result.
func (s *modeler) setSeed(ctx context.Context, e jetstream.KeyValueEntry) error {
	var sd wire.SeedDone
	if err := json.Unmarshal(e.Value(), &sd); err != nil {
		s.log.Warn("bad seed record ignored", zap.Uint64("revision", e.Revision()), zap.Error(err))
		return nil
	}
	if s.seed != nil && *s.seed == sd {
		return nil
	}
	s.seed = &sd
	s.log.Info("seed done", zap.Int("results", sd.Results), zap.Uint64("last_seq", sd.LastSeq),
		zap.Uint64("seq", s.seq), zap.Bool("planned", s.planned))
	if s.planned {
		return nil
	}
	switch {
	case s.seq == sd.LastSeq:
		return s.plan(ctx, s.m, s.seq)
	case s.seq > sd.LastSeq:
		// The model went past the seed (a restart from a later snapshot
		// before the plan was recorded): rebuild the seed-only model.
		m, err := s.replay(ctx, sd.LastSeq)
		if err != nil {
			return err
		}
		return s.plan(ctx, m, sd.LastSeq)
	}
	return nil
}

// snapshot encodes the model and stores it in the background; a snapshot
// still uploading defers this one.
func (s *modeler) snapshot(ctx context.Context) {
	if s.upload != nil {
		select {
		case err := <-s.upload:
			s.uploadDone(err)
		default:
			return
		}
	}
	s.buf.Reset()
	if err := EncodeSnapshot(s.buf, s.seq, s.m); err != nil {
		s.log.Error("snapshot failed", zap.Error(err))
		return
	}
	s.snapSeq, s.since, s.lastSnap = s.seq, 0, time.Now()
	s.updateGauges(true)
	data, seq, started := s.buf.Bytes(), s.seq, time.Now()
	ch := make(chan error, 1)
	s.upload = ch
	go func() {
		// Not cancelled with ctx: the last snapshot waits for this one.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		err := putSnapshot(uctx, s.store, SnapshotObject, data)
		if err == nil {
			s.log.Debug("snapshot stored", zap.Uint64("seq", seq), zap.Int("bytes", len(data)), zap.Duration("took", time.Since(started)))
		}
		ch <- err
	}()
}

func (s *modeler) uploadDone(err error) {
	s.upload = nil
	if err != nil {
		s.log.Warn("snapshot upload failed", zap.Error(err))
		s.snapSeq = 0 // store the next one even if nothing changed
		return
	}
	s.st.Snapshots.Add(1)
}

// finalSnapshot waits for an upload in flight and stores the last state.
func (s *modeler) finalSnapshot(ctx context.Context) error {
	if s.m == nil {
		return nil
	}
	if s.upload != nil {
		s.uploadDone(<-s.upload)
	}
	if s.seq == s.snapSeq {
		return nil
	}
	s.buf.Reset()
	if err := EncodeSnapshot(s.buf, s.seq, s.m); err != nil {
		return fmt.Errorf("final snapshot: %w", err)
	}
	if err := s.b.Retry(ctx, "final snapshot", func(ctx context.Context) error {
		return putSnapshot(ctx, s.store, SnapshotObject, s.buf.Bytes())
	}); err != nil {
		return fmt.Errorf("final snapshot: %w", err)
	}
	s.updateGauges(true)
	s.snapSeq = s.seq
	s.st.Snapshots.Add(1)
	s.log.Info("snapshot stored", zap.Uint64("seq", s.seq), zap.Int("bytes", s.buf.Len()))
	return nil
}

// progress logs the rate of results every few seconds while it changes.
func (s *modeler) progress(stop <-chan struct{}) {
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	last, lastT := s.st.Results.Load(), time.Now()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			n := s.st.Results.Load()
			if n == last {
				continue
			}
			s.log.Info("progress", zap.Int64("results", n), zap.Int64("bad", s.st.Bad.Load()), zap.Uint64("seq", s.st.Seq.Load()),
				zap.Float64("results_per_second", float64(n-last)/now.Sub(lastT).Seconds()))
			last, lastT = n, now
		}
	}
}
