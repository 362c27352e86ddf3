package seeder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/wire"
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
	acked   uint64 // items acknowledged (messages, or the results they carry)
	dups    uint64 // of which the server already had
}

type pendingMsg struct {
	f       jetstream.PubAckFuture
	subject string
	id      string
	data    []byte
	items   uint64 // what the message counts for in acked
}

func newPublisher(b *bus.Bus, window int) *publisher {
	return &publisher{b: b, window: window}
}

// publish queues one message, which counts for items in the acks; every
// window messages it waits for the acks.
func (p *publisher) publish(ctx context.Context, subject, id string, data []byte, items uint64) error {
	f, err := p.b.PublishAsync(ctx, &nats.Msg{Subject: subject, Data: data}, id)
	if err != nil {
		return err
	}
	p.pending = append(p.pending, pendingMsg{f, subject, id, data, items})
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
			p.record(ack, m.items)
		case err := <-m.f.Err():
			// A lost or refused ack: publish again, synchronously, retried
			// while the cluster is unavailable (bus.Retry). The Nats-Msg-Id
			// makes this safe if the first one was stored.
			ack, err2 := p.b.PublishMsg(ctx, &nats.Msg{Subject: m.subject, Data: m.data}, m.id)
			if err2 != nil {
				return fmt.Errorf("publish %s %s: %w", m.subject, m.id, errors.Join(err, err2))
			}
			p.record(ack, m.items)
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

func (p *publisher) record(ack *jetstream.PubAck, items uint64) {
	p.acked += items
	if ack.Duplicate {
		p.dups += items
	}
	p.maxSeq = max(p.maxSeq, ack.Sequence)
}

// importWindow is how many result messages an import keeps in flight for
// about results results in flight (--batch), and at least a few: the acks
// are waited for a window at a time.
func importWindow(results int) int {
	return max(4, (results+wire.BatchResults-1)/wire.BatchResults)
}

// resultBatcher publishes imported results in batches (wire.ResultBatch;
// the file's order decides them, so a re-run makes the same batches). A
// batch's Nats-Msg-Id is the one its first row had alone,
// "seed:<ip>:<port>:<n>", and for more than one result
// ":<results>:<hash>" after it (the hash of every (ip, port), see
// wire.ResultBatch.ID): a re-run is de-duplicated whole, and two batches
// differ in id unless they hold the same services from the same row on.
type resultBatcher struct {
	pub      *publisher
	batch    wire.ResultBatch
	firstRep uint32 // n of the batch's first row
	idPrefix string // "seed"; a cycle's seed "seed@<cycle>", so cycles are not de-duplicated against each other
}

func newResultBatcher(pub *publisher) *resultBatcher {
	return &resultBatcher{pub: pub, idPrefix: "seed"}
}

// add adds a result, rep earlier rows of its (ip, port) in the file,
// sending the batch when it is full.
func (r *resultBatcher) add(ctx context.Context, res *wire.Result, rep uint32) error {
	ok, err := r.batch.Add(res)
	if err != nil {
		return err
	}
	if !ok { // past the batch's bytes: send it, and start the next with res
		if err := r.send(ctx); err != nil {
			return err
		}
		if _, err := r.batch.Add(res); err != nil {
			return err
		}
	}
	if r.batch.Len() == 1 {
		r.firstRep = rep
	}
	if r.batch.Full() {
		return r.send(ctx)
	}
	return nil
}

func (r *resultBatcher) send(ctx context.Context) error {
	ip, port := r.batch.First()
	n := r.batch.Len()
	id := fmt.Sprintf("%s:%s:%d:%d", r.idPrefix, ip, port, r.firstRep)
	if n > 1 {
		id = fmt.Sprintf("%s:%d:%x", id, n, r.batch.Sum())
	}
	return r.pub.publish(ctx, wire.ResultsSubject(wire.PhaseSeed), id, r.batch.Take(), uint64(n))
}

// flush sends what is batched and waits for every ack.
func (r *resultBatcher) flush(ctx context.Context) error {
	if r.batch.Len() > 0 {
		if err := r.send(ctx); err != nil {
			return err
		}
	}
	return r.pub.flush(ctx)
}
