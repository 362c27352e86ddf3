package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// idleWait is how long CatchUp waits for a message before it looks whether
// any is left to read.
const idleWait = 2 * time.Second

// ReadFunc is handed each message a read delivers, with its metadata; it
// returns false to end the read, or an error, which the read returns.
type ReadFunc func(msg jetstream.Msg, md *jetstream.MsgMetadata) (more bool, err error)

// Follow hands fn the messages of stream that cfg selects, in order, from
// an ordered consumer, until fn ends it (nil, or fn's error) or ctx ends
// (ctx's error, wrapped). opts set the consumer's pulls (PullMaxMessages).
// The consumer's creation is retried while the cluster is unavailable
// (Retry), and the consumer is deleted when the read is done.
//
// It consumes with an iterator, never a loop of the ordered consumer's
// Fetch: each Fetch re-creates the consumer and retries that without end
// while a server is gone, and nothing cancels it (a prober held its stop
// past its timeout). The iterator replaces a consumer that went away on
// its own; it is read on a goroutine of its own, so the read returns as
// soon as ctx ends, while the iterator may still be between two tries to
// re-create its consumer (up to 10 s each).
func (b *Bus) Follow(ctx context.Context, stream string, cfg jetstream.OrderedConsumerConfig, fn ReadFunc, opts ...jetstream.PullMessagesOpt) error {
	return b.read(ctx, stream, cfg, false, fn, opts)
}

// CatchUp is Follow that also ends, nil, once no message cfg selects is
// left: at once when there is none, after a message that leaves none, or
// when, no message coming, the stream holds none past the last one read (the
// rest were deleted). A read that gets no message for RetryFor while some
// are left fails.
func (b *Bus) CatchUp(ctx context.Context, stream string, cfg jetstream.OrderedConsumerConfig, fn ReadFunc, opts ...jetstream.PullMessagesOpt) error {
	return b.read(ctx, stream, cfg, true, fn, opts)
}

type delivery struct {
	msg jetstream.Msg
	err error
}

func (b *Bus) read(ctx context.Context, stream string, cfg jetstream.OrderedConsumerConfig, catchUp bool, fn ReadFunc, opts []jetstream.PullMessagesOpt) error {
	var cons jetstream.Consumer
	var pending uint64
	if err := b.Retry(ctx, "read "+stream, func(ctx context.Context) (err error) {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		if cons, err = b.JS.OrderedConsumer(rctx, stream, cfg); err != nil || !catchUp {
			return err
		}
		// Before any pull: what is pending is all there is to read.
		info, err := cons.Info(rctx)
		if err != nil {
			return err
		}
		pending = info.NumPending
		return nil
	}); err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	if catchUp && pending == 0 {
		b.dropConsumer(stream, cons)
		return nil
	}
	it, err := cons.Messages(opts...)
	if err != nil {
		b.dropConsumer(stream, cons)
		return fmt.Errorf("read %s: %w", stream, err)
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Stop waits for a re-creation of the consumer under way: not here.
	context.AfterFunc(rctx, it.Stop)
	var nextOpts []jetstream.NextOpt
	if catchUp {
		nextOpts = append(nextOpts, jetstream.NextMaxWait(idleWait))
	}
	next := make(chan delivery)
	go func() {
		defer b.dropConsumer(stream, cons)
		for {
			msg, err := it.Next(nextOpts...)
			select {
			case next <- delivery{msg, err}:
			case <-rctx.Done():
				return
			}
			if err != nil && !errors.Is(err, nats.ErrTimeout) {
				return
			}
		}
	}()
	var seen uint64 // the last stream sequence handed to fn
	progress := time.Now()
	for {
		var d delivery
		select {
		case <-ctx.Done():
		case d = <-next:
		}
		if ctx.Err() != nil {
			return fmt.Errorf("read %s: %w", stream, ctx.Err())
		}
		if errors.Is(d.err, nats.ErrTimeout) { // CatchUp, no message for idleWait
			info, err := b.streamInfo(ctx, stream)
			if err != nil {
				return err
			}
			if info.State.Msgs == 0 || info.State.LastSeq <= seen {
				return nil
			}
			if time.Since(progress) > RetryFor {
				return fmt.Errorf("read %s: stuck after sequence %d of %d", stream, seen, info.State.LastSeq)
			}
			continue
		}
		if d.err != nil {
			return fmt.Errorf("read %s: %w", stream, d.err)
		}
		md, err := d.msg.Metadata()
		if err != nil {
			continue
		}
		seen, progress = md.Sequence.Stream, time.Now()
		more, err := fn(d.msg, md)
		if err != nil {
			return err
		}
		if !more || catchUp && md.NumPending == 0 {
			return nil
		}
	}
}

// dropConsumer deletes a read's consumer once done, rather than leave it on
// the server until its inactivity threshold (which removes it if this
// fails).
func (b *Bus) dropConsumer(stream string, cons jetstream.Consumer) {
	ci := cons.CachedInfo()
	if ci == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	_ = b.JS.DeleteConsumer(ctx, stream, ci.Name)
}
