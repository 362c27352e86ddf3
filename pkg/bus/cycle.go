package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Keys of the control bucket for continuous runs (seeder --cycle).
const (
	// KeyCycle is the Cycle record, written by the seeder.
	KeyCycle = "cycle"
	// KeyPlanCycle is the PlanCycle record, written by the modeler once
	// the plan of a cycle is published.
	KeyPlanCycle = "plan-cycle"
)

// Cycle is the state of a continuous run: the cycle it is in, when it
// began, whether its seed is published, and where the seeder's cyclic
// order stands, so a restarted seeder resumes the cycle it was in.
type Cycle struct {
	V        int       `json:"v"`
	N        int       `json:"n"`         // the cycle, from 0
	Started  time.Time `json:"started"`   // when cycle N began
	SeedDone bool      `json:"seed_done"` // cycle N's seed is on the bus
	// Walked is how many addresses of the cyclic order the cycles before
	// N sampled: cycle N's sample starts there.
	Walked uint64 `json:"walked"`
	// RandSeed picks the cyclic order; kept so that a restart walks the
	// same one.
	RandSeed int64 `json:"rand_seed"`
}

// PlanCycle says which cycle the last plan was made for.
type PlanCycle struct {
	V    int       `json:"v"`
	N    int       `json:"n"`
	Time time.Time `json:"time"`
}

// GetJSON reads the JSON record at key into v; found is false when the
// key does not exist.
func (b *Bus) GetJSON(ctx context.Context, key string, v any) (found bool, err error) {
	kv, err := b.Control(ctx)
	if err != nil {
		return false, err
	}
	var e jetstream.KeyValueEntry
	err = b.Retry(ctx, "read control record "+key, func(ctx context.Context) (err error) {
		e, err = kv.Get(ctx, key)
		return err
	})
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("read control record %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return false, fmt.Errorf("read control record %s: %w", key, err)
	}
	return true, nil
}

// PutJSON writes v as JSON at key.
func (b *Bus) PutJSON(ctx context.Context, key string, v any) error {
	kv, err := b.Control(ctx)
	if err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode control record %s: %w", key, err)
	}
	if err := b.Retry(ctx, "write control record "+key, func(ctx context.Context) error {
		_, err := kv.Put(ctx, key, data)
		return err
	}); err != nil {
		return fmt.Errorf("write control record %s: %w", key, err)
	}
	return nil
}

// WatchCycle calls fn with every Cycle record put, the current one first,
// until ctx ends or fn fails.
func (b *Bus) WatchCycle(ctx context.Context, fn func(Cycle) error) error {
	kv, err := b.Control(ctx)
	if err != nil {
		return err
	}
	var w jetstream.KeyWatcher
	if err := b.Retry(ctx, "watch cycle record", func(ctx context.Context) (err error) {
		w, err = kv.Watch(ctx, KeyCycle)
		return err
	}); err != nil {
		return fmt.Errorf("watch cycle record: %w", err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return fmt.Errorf("watch cycle record: watcher closed")
			}
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue
			}
			var c Cycle
			if err := json.Unmarshal(e.Value(), &c); err != nil {
				continue // a bad record: the next put replaces it
			}
			if err := fn(c); err != nil {
				return err
			}
		}
	}
}

// ProberConsumer is the probers' durable consumer on TARGETS and
// PREDICTIONS: a producer that must know its targets were probed waits
// for its ack floor (WaitAcked).
const ProberConsumer = "prober"

// WaitAcked waits until the durable consumer on stream has acknowledged
// every message up to and including seq (its ack floor), asking every poll;
// a consumer not created yet is waited for. progress, if set, is called
// about every half minute while it waits, with how long it has.
func (b *Bus) WaitAcked(ctx context.Context, stream, consumer string, seq uint64, poll time.Duration, progress func(waited time.Duration, floor uint64)) error {
	started, told := time.Now(), time.Now()
	var floor uint64
	var c jetstream.Consumer // looked up once it exists
	for {
		var err error
		if c == nil {
			c, err = b.JS.Consumer(ctx, stream, consumer)
		}
		if err == nil {
			var info *jetstream.ConsumerInfo
			if info, err = c.Info(ctx); err == nil {
				if floor = info.AckFloor.Stream; floor >= seq {
					return nil
				}
			}
		}
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !Transient(err) {
			return fmt.Errorf("wait for %s to ack %s up to %d: %w", consumer, stream, seq, err)
		}
		if progress != nil && time.Since(told) >= 30*time.Second {
			told = time.Now()
			progress(time.Since(started), floor)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to ack %s up to %d: %w", consumer, stream, seq, ctx.Err())
		case <-time.After(poll):
		}
	}
}
