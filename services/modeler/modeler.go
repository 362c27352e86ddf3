// Package modeler is the GPS modeler service: it keeps the co-occurrence
// model of every result on the RESULTS stream, snapshots it to the snapshot
// store so a restart resumes exactly where the snapshot ends, and, once the
// seed is complete, publishes the priors scanning plan to TARGETS.
package modeler

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
	tickInterval    = time.Second
	shutdownTimeout = time.Minute
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
	resultpipe.Stats
	PlanGroups   atomic.Int64  // groups (prefix sweeps) of the priors plan published, extra sweeps included
	ExtraGroups  atomic.Int64  // of which streaming GPS's extra sweeps
	PlanMessages atomic.Int64  // targets messages of the priors plan published
	Planned      atomic.Bool   // the priors plan is published (by this run or an earlier one)
	Counted      atomic.Uint64 // RESULTS sequence up to which the model's counts are complete (they run behind while results stream in)
}

type modeler struct {
	*resultpipe.Core // the consumer's position, acks, metrics, snapshots
	cfg              Config
	st               *Stats
	kv               jetstream.KeyValue
	store            jetstream.ObjectStore
	ready            func()

	m      *model.Model
	newest jetstream.Msg // the last message applied: acked with the chunk's end (Core.Hold)

	seed      *wire.SeedDone
	planned   bool
	cycleN    int       // the cycle a re-plan is due for (cycle.go)
	lastCheck time.Time // of the consumer, for a seed whose last messages are gone
}

// Run models RESULTS, and plans once the seed is done, until ctx ends; it
// returns nil on a clean stop, after a last snapshot.
func Run(ctx context.Context, d Deps) error {
	st := cmp.Or(d.Stats, new(Stats))
	cfg, core, err := resultpipe.Start(Service, d.Config, d.Bus, d.Log, &st.Stats, d.Metrics)
	if err != nil {
		return err
	}
	s := &modeler{Core: core, cfg: cfg, st: st, ready: d.Ready}
	s.Snap.Encode = func(w io.Writer, seq uint64) error { return EncodeSnapshot(w, seq, s.m) }
	s.Snap.Put = func(ctx context.Context, data []byte) error { return putSnapshot(ctx, s.store, SnapshotObject, data) }
	s.Snap.Stored = func() { s.UpdateGauges(s.m, true) }

	if err := s.open(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	s.UpdateGauges(s.m, true)

	err = resultpipe.RunLoop(ctx, s.Bus, Service, s.Lag(), s.Progress(nil), s.loop)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if s.m != nil {
		if e := s.Snap.Final(sctx, s.Bus, s.Seq); e != nil {
			err = errors.Join(err, e)
		}
	}
	if err == nil {
		s.Log.Info("modeler stopped", zap.Uint64("seq", s.Seq), zap.Int64("results", s.st.Results.Load()))
	}
	return err
}

// open loads the snapshot and the control state.
func (s *modeler) open(ctx context.Context) error {
	var err error
	if s.kv, err = s.Bus.Control(ctx); err != nil {
		return err
	}
	if s.store, err = s.Bus.Snapshots(ctx); err != nil {
		return err
	}
	var m *model.Model
	var seq uint64
	var found bool
	if err := s.Bus.Retry(ctx, "load snapshot", func(ctx context.Context) (err error) {
		m, seq, found, err = loadSnapshot(ctx, s.store, SnapshotObject)
		return err
	}); err != nil {
		return err
	}
	if found {
		ms := m.Stats()
		s.Log.Info("snapshot loaded", zap.Uint64("seq", seq), zap.Int("hosts", ms.Hosts), zap.Int("services", ms.Services), zap.Int("keys", ms.Keys))
	} else {
		m = model.New()
		s.Log.Info("no snapshot: starting from the beginning of the stream")
	}
	s.m = m
	s.SetSeq(seq)
	s.Snap.Reset(seq)

	switch err := s.Bus.Retry(ctx, "get plan record", func(ctx context.Context) error {
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

// loop applies results in stream order, as the reader hands them on,
// and takes the seed record between chunks.
func (s *modeler) loop(ctx context.Context) error {
	var w jetstream.KeyWatcher
	if err := s.Bus.Retry(ctx, "watch seed record", func(ctx context.Context) (err error) {
		w, err = s.kv.Watch(ctx, bus.KeySeed)
		return err
	}); err != nil {
		return fmt.Errorf("watch seed record: %w", err)
	}
	defer w.Stop()
	return s.Loop(ctx, resultpipe.LoopConfig{Fetch: s.cfg.Fetch, Ready: s.ready, Watch: w.Updates(), OnWatch: s.onSeed, Stopping: s.ConfirmAcks}, s)
}

// Applied acks the chunk's messages (holding the newest) and stores a
// snapshot when one is due.
func (s *modeler) Applied(ctx context.Context, items []resultpipe.Item) error {
	for i := range items {
		s.Observe(items[i].Recv)
	}
	s.Hold(s.newest)
	if s.Snap.Due(s.Seq, s.cfg.SnapshotEvery, s.cfg.SnapshotInterval) {
		s.Snap.Take(ctx, s.Seq, shutdownTimeout)
	}
	s.UpdateGauges(s.m, false)
	return nil
}

// Resync forgets the newest message: its consumer is recreated.
func (s *modeler) Resync(context.Context) error {
	s.newest = nil
	return nil
}

// Apply applies one decoded message.
func (s *modeler) Apply(ctx context.Context, it *resultpipe.Item) error {
	if s.Skip(it) {
		return nil
	}
	seq := it.Seq
	if !s.planned && !s.cfg.NoPlan {
		if s.seed == nil && pastSeed(it) {
			// A result of a later phase: the seed record may be on its way.
			if err := s.getSeed(ctx); err != nil {
				return err
			}
		}
		if s.seed != nil && !s.planned && s.Seq <= s.seed.LastSeq && seq > s.seed.LastSeq {
			// This message is past the seed: the model is the seed-only one.
			if err := s.plan(ctx, s.m, s.Seq); err != nil {
				return err
			}
		}
	}
	if it.Err != nil {
		if err := s.DeadLetter(ctx, it); err != nil {
			return err // stopping: leave it to the next run
		}
	} else {
		// Every result of the message, before its sequence counts as
		// applied: a snapshot never holds part of a message. A gone
		// result retracts its service: the model counts the live ones.
		for i := range it.Results {
			it.Results[i].ApplyTo(s.m)
		}
		s.CountResults(it.Results)
		s.newest = it.Msg // acked cumulatively: see Applied
	}
	s.SetSeq(seq)
	if s.seed != nil && !s.planned && seq == s.seed.LastSeq {
		if err := s.plan(ctx, s.m, seq); err != nil {
			return err
		}
	}
	if s.Snap.Since >= s.cfg.SnapshotEvery {
		s.Snap.Take(ctx, s.Seq, shutdownTimeout)
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

// Idle runs when no message is waiting: acks, interval snapshots and the
// check for a seed whose last messages never arrive.
func (s *modeler) Idle(ctx context.Context) error {
	s.ConfirmAcks(ctx)
	s.m.Sync() // count now what is behind, not at the next snapshot
	s.st.Counted.Store(s.Seq)
	s.UpdateGauges(s.m, false)
	if s.Snap.Due(s.Seq, s.cfg.SnapshotEvery, s.cfg.SnapshotInterval) {
		s.Snap.Take(ctx, s.Seq, shutdownTimeout)
	}
	if s.seed != nil && !s.planned && s.Seq < s.seed.LastSeq && time.Since(s.lastCheck) >= tickInterval {
		s.lastCheck = time.Now()
		// Messages up to the seed's last may have been deleted from the
		// stream: when none is left after the model's sequence, the model
		// is as complete as it will be. The stream is asked for the next
		// message itself: a consumer's pending count may not count one just
		// stored yet, and planning on it would leave the seed's last results
		// out of the plan.
		str, err := s.Bus.JS.Stream(ctx, bus.StreamResults)
		if err != nil {
			return nil
		}
		next, err := str.GetMsg(ctx, s.Seq+1, jetstream.WithGetMsgSubject(wire.ResultsPrefix+">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && next.Sequence > s.seed.LastSeq {
			s.Log.Warn("stream ends before the seed's last sequence: planning from what there is",
				zap.Uint64("seq", s.Seq), zap.Uint64("seed_last_seq", s.seed.LastSeq))
			return s.plan(ctx, s.m, s.Seq)
		}
	}
	return nil
}

// onSeed takes a new seed record from the watcher.
func (s *modeler) onSeed(ctx context.Context, e jetstream.KeyValueEntry) error {
	if e == nil || e.Operation() != jetstream.KeyValuePut || s.cfg.NoPlan {
		return nil
	}
	return s.setSeed(ctx, e)
}

// getSeed reads the seed record, if there is one.
func (s *modeler) getSeed(ctx context.Context) error {
	var e jetstream.KeyValueEntry
	err := s.Bus.Retry(ctx, "get seed record", func(ctx context.Context) (err error) {
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
		s.Log.Warn("bad seed record ignored", zap.Uint64("revision", e.Revision()), zap.Error(err))
		return nil
	}
	if s.seed != nil && *s.seed == sd {
		return nil
	}
	s.seed = &sd
	s.Log.Info("seed done", zap.Int("results", sd.Results), zap.Uint64("last_seq", sd.LastSeq),
		zap.Uint64("seq", s.Seq), zap.Bool("planned", s.planned))
	if s.planned {
		due, err := s.cycleDue(ctx)
		if err != nil || !due {
			return err
		}
	}
	switch {
	case s.Seq == sd.LastSeq:
		return s.plan(ctx, s.m, s.Seq)
	case s.Seq > sd.LastSeq && s.cycleN > 0:
		// A later cycle plans from the model as it is: everything known.
		return s.plan(ctx, s.m, s.Seq)
	case s.Seq > sd.LastSeq:
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
