package seeder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gpsscan/gps/pkg/bus"
)

// ackTimeout bounds the wait for the acks of one window of publishes.
const ackTimeout = time.Minute

// publisher publishes asynchronously, a window of messages at a time, and
// checks every ack: unlike bus.Async it keeps the stream sequences (SeedDone
// needs the last one) and retries a publish that failed, with the same
// Nats-Msg-Id, so nothing is lost silently.
type publisher struct {
	b       *bus.Bus
	window  int
	pending []pendingMsg
	maxSeq  uint64 // highest stream sequence acknowledged
	acked   uint64 // messages acknowledged
	dups    uint64 // of which the server already had
}

type pendingMsg struct {
	f       jetstream.PubAckFuture
	subject string
	id      string
	data    []byte
}

func newPublisher(b *bus.Bus, window int) *publisher {
	return &publisher{b: b, window: window}
}

// publish queues one message; every window messages it waits for the acks.
func (p *publisher) publish(ctx context.Context, subject, id string, data []byte) error {
	f, err := p.b.PublishAsync(ctx, &nats.Msg{Subject: subject, Data: data}, id)
	if err != nil {
		return err
	}
	p.pending = append(p.pending, pendingMsg{f, subject, id, data})
	if len(p.pending) >= p.window {
		return p.flush(ctx)
	}
	return nil
}

// flush waits for the ack of every queued message.
func (p *publisher) flush(ctx context.Context) error {
	timeout := time.NewTimer(ackTimeout)
	defer timeout.Stop()
	for _, m := range p.pending {
		select {
		case ack := <-m.f.Ok():
			p.record(ack)
		case err := <-m.f.Err():
			// A lost or refused ack: publish again, synchronously, retried
			// while the cluster is unavailable (bus.Retry). The Nats-Msg-Id
			// makes this safe if the first one was stored.
			ack, err2 := p.b.PublishMsg(ctx, &nats.Msg{Subject: m.subject, Data: m.data}, m.id)
			if err2 != nil {
				return fmt.Errorf("publish %s %s: %w", m.subject, m.id, errors.Join(err, err2))
			}
			p.record(ack)
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return fmt.Errorf("publish %s: no ack from the server for %v", m.subject, ackTimeout)
		}
	}
	clear(p.pending)
	p.pending = p.pending[:0]
	return nil
}

func (p *publisher) record(ack *jetstream.PubAck) {
	p.acked++
	if ack.Duplicate {
		p.dups++
	}
	p.maxSeq = max(p.maxSeq, ack.Sequence)
}
