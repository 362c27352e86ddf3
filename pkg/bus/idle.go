package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// WaitIdle returns once the seed is in, the plan is published, and every
// stream's consumers (durable ones: readers are not the pipeline's work)
// exist and have nothing pending or unacknowledged, with
// no stream growing, for the quiet period. consumers names, for each
// stream, the durable consumers it must have before its messages count as
// handled: a service still starting (loading a world or a snapshot) has not
// made its consumer yet, and its stream looks idle. A look that fails while the
// cluster is unavailable (Transient) is tried again.
func (b *Bus) WaitIdle(ctx context.Context, quiet time.Duration, consumers map[string][]string, log *zap.Logger) error {
	return b.WaitIdleWhen(ctx, quiet, consumers, log, nil)
}

// WaitIdleWhen is WaitIdle for a pipeline with no plan record (a prober
// that takes its own seed): done, when not nil, says instead whether the
// work outside the streams is done, and the streams count as idle only
// while it is.
func (b *Bus) WaitIdleWhen(ctx context.Context, quiet time.Duration, consumers map[string][]string, log *zap.Logger, done func() bool) error {
	kv, err := b.Control(ctx)
	if err != nil {
		return err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	var since time.Time
	lastLog := time.Now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		// Each look bounded on its own: a request lost while a cluster
		// elects a leader must not wait for ctx's deadline.
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		var err error
		if done == nil {
			_, err = kv.Get(rctx, KeyPlan)
		}
		var state string
		var idle bool
		if err == nil {
			state, idle, err = b.pipelineState(rctx, consumers)
			if done != nil && !done() {
				idle = false
			}
		}
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, jetstream.ErrKeyNotFound):
			continue
		case ctx.Err() == nil && Transient(err):
			last, since = "", time.Time{} // look again
			if time.Since(lastLog) > 5*time.Second {
				log.Warn("pipeline state unavailable", zap.Error(err))
				lastLog = time.Now()
			}
			continue
		default:
			return fmt.Errorf("wait for the pipeline: %w", err)
		}
		if time.Since(lastLog) > 5*time.Second {
			log.Info("pipeline progress", zap.String("state", state))
			lastLog = time.Now()
		}
		switch {
		case !idle || state != last:
			last, since = state, time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= quiet:
			log.Info("pipeline idle", zap.String("state", state))
			return nil
		}
	}
}

// pipelineState describes the streams and consumers; idle is true when every
// stream with messages has its consumers and none has anything pending or
// unacknowledged. Only the pipeline's consumers count (pipelineConsumer):
// a reader following a stream (an ordered consumer of gps watch, of the
// prober's refresher, of gps all measuring a cycle) is no work of the
// pipeline, and one that stopped reading would keep it busy for ever.
func (b *Bus) pipelineState(ctx context.Context, consumers map[string][]string) (string, bool, error) {
	idle := true
	state := ""
	for _, s := range []string{StreamResults, StreamTargets, StreamPredictions} {
		str, err := b.JS.Stream(ctx, s)
		if err != nil {
			return "", false, fmt.Errorf("stream %s: %w", s, err)
		}
		info, err := str.Info(ctx)
		if err != nil {
			return "", false, fmt.Errorf("stream %s info: %w", s, err)
		}
		state += fmt.Sprintf("%s:%d ", s, info.State.LastSeq)
		lister := str.ListConsumers(ctx)
		missing := map[string]bool{}
		if info.State.LastSeq > 0 {
			for _, name := range consumers[s] {
				missing[name] = true
			}
		}
		for ci := range lister.Info() {
			delete(missing, ci.Name)
			if !pipelineConsumer(ci, consumers[s]) {
				continue
			}
			if ci.NumPending > 0 || ci.NumAckPending > 0 || ci.NumRedelivered > 0 && ci.NumAckPending > 0 {
				idle = false
			}
			state += fmt.Sprintf("%s/%s:%d/%d ", s, ci.Name, ci.NumPending, ci.NumAckPending)
		}
		if err := lister.Err(); err != nil {
			return "", false, fmt.Errorf("list consumers of %s: %w", s, err)
		}
		for name := range missing {
			idle = false
			state += fmt.Sprintf("%s/%s:not-yet ", s, name)
		}
	}
	return state, idle, nil
}

// pipelineConsumer reports whether ci is work of the pipeline: a durable
// consumer, or one named in names. An ephemeral consumer (an ordered
// consumer reading a stream) is not: its pending messages are not
// unhandled work, and it lingers on the server after its reader is done.
func pipelineConsumer(ci *jetstream.ConsumerInfo, names []string) bool {
	if ci.Config.Durable != "" {
		return true
	}
	for _, n := range names {
		if n == ci.Name {
			return true
		}
	}
	return false
}
