package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// requestTimeout bounds each look at a stream of EachMessage and WaitIdle.
const requestTimeout = 5 * time.Second

// EachMessage reads a whole stream, as it is when the call starts, with an
// ordered consumer; fn sees each message once, in order. Requests that fail
// while the cluster is unavailable are retried (Retry), and a consumer
// that stops delivering before the end (its server went away) is replaced
// by one that starts after the last message read. It never ends early
// without an error.
func (b *Bus) EachMessage(ctx context.Context, stream string, fn func([]byte)) error {
	info, err := b.streamInfo(ctx, stream)
	if err != nil {
		return err
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	var seen uint64 // the last sequence handed to fn
	deadline := time.Now().Add(RetryFor)
	for {
		cfg := jetstream.OrderedConsumerConfig{}
		if seen > 0 {
			cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seen+1
		}
		var cons jetstream.Consumer
		if err := b.Retry(ctx, "read "+stream, func(ctx context.Context) (err error) {
			rctx, cancel := context.WithTimeout(ctx, requestTimeout)
			defer cancel()
			cons, err = b.JS.OrderedConsumer(rctx, stream, cfg)
			return err
		}); err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		for empty := 0; empty < 2 && seen < last; {
			batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
			if err != nil {
				if !Transient(err) {
					return fmt.Errorf("read %s: %w", stream, err)
				}
				empty++
				continue
			}
			got := 0
			for msg := range batch.Messages() {
				md, err := msg.Metadata()
				if err != nil || md.Sequence.Stream <= seen {
					continue
				}
				got++
				seen = md.Sequence.Stream
				fn(msg.Data())
				if seen >= last {
					break // the end: do not wait for the rest of the batch
				}
			}
			if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) && !Transient(err) {
				return fmt.Errorf("read %s: %w", stream, err)
			}
			if got == 0 {
				empty++
			} else {
				empty = 0
			}
		}
		if seen >= last {
			return nil
		}
		// No more deliveries before the end: are the rest gone?
		if info, err = b.streamInfo(ctx, stream); err != nil {
			return err
		}
		if info.State.Msgs == 0 || info.State.LastSeq <= seen {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("read %s: stuck after sequence %d of %d", stream, seen, last)
		}
	}
}

func (b *Bus) streamInfo(ctx context.Context, stream string) (*jetstream.StreamInfo, error) {
	var info *jetstream.StreamInfo
	if err := b.Retry(ctx, "read "+stream, func(ctx context.Context) error {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		str, err := b.JS.Stream(rctx, stream)
		if err == nil {
			info, err = str.Info(rctx)
		}
		return err
	}); err != nil {
		return nil, fmt.Errorf("read %s: %w", stream, err)
	}
	return info, nil
}
