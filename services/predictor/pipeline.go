package predictor

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// chunkSize is the most messages handed on at once between the stages.
const chunkSize = 128

// Timing of the reader.
const (
	stopWait = 2 * time.Second // bounds the wait for the consumer's callback to finish on stop
	// A pull request lives pullExpiry and the server sends a heartbeat on it
	// every pullHeartbeat: when a cluster moves the consumer's leader to
	// another server, the pulls waiting at the old one are gone, and the
	// client notices after two missed heartbeats and pulls again.
	pullExpiry    = 6 * time.Second
	pullHeartbeat = 2 * time.Second
)

// item is one message and what it decodes to.
type item struct {
	msg    jetstream.Msg
	recv   time.Time // when the reader got it
	seq    uint64    // RESULTS stream sequence
	noMeta bool      // not a JetStream message
	svc    row.Service
	phase  string
	time   time.Time // the result's time (its first publication)
	err    error     // not a usable result: dead-letter it
}

// chunk is messages in stream order; done closes once they are decoded.
type chunk struct {
	items []item
	done  chan struct{}
}

// reader consumes results (pull requests kept in flight by the client) and
// hands them on in chunks: to the decoders, which run in parallel, and in
// stream order to the one goroutine that owns the model. It never waits for
// a full chunk: whatever has arrived when nothing more is waiting goes on at
// once. (The modeler has the same pipeline.)
//
// On stop nothing it holds is left to the consumer's AckWait: what arrives
// after ctx ends is nak'ed, and release naks what was handed on but not
// applied.
type reader struct {
	cons    jetstream.Consumer
	fetch   int
	log     *zap.Logger
	ordered chan *chunk // to the applier, in stream order; closed when reading stops
	work    chan *chunk // to the decoders
	free    chan *chunk // chunks to reuse
	err     error       // why reading stopped early (set before ordered is closed)
}

func newReader(cons jetstream.Consumer, fetch int, log *zap.Logger) *reader {
	return &reader{cons: cons, fetch: fetch, log: log, ordered: make(chan *chunk, 16), work: make(chan *chunk, 16), free: make(chan *chunk, 40)}
}

// start runs the reader and the decoders until ctx ends; wait returns when
// they are all gone.
func (r *reader) start(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.run(ctx)
	}()
	for range max(1, min(4, runtime.GOMAXPROCS(0))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range r.work {
				for i := range c.items {
					decode(&c.items[i])
				}
				close(c.done)
			}
		}()
	}
	return wg.Wait
}

func decode(it *item) {
	md, err := it.msg.Metadata()
	if err != nil {
		it.noMeta, it.err = true, err
		return
	}
	it.seq = md.Sequence.Stream
	r, err := wire.DecodeResult(it.msg.Data())
	if err == nil {
		it.svc, err = r.Service()
	}
	it.phase, it.time, it.err = r.Phase, r.Time, err
}

func (r *reader) get() *chunk {
	select {
	case c := <-r.free:
		return c
	default:
		return &chunk{items: make([]item, 0, chunkSize)}
	}
}

// put returns a chunk that was applied.
func (r *reader) put(c *chunk) {
	clear(c.items)
	c.items = c.items[:0]
	select {
	case r.free <- c:
	default:
	}
}

// emit hands a chunk to the decoders, then to the applier: a chunk the
// applier gets is always decoded in the end. A chunk that goes nowhere
// because ctx ended is nak'ed.
func (r *reader) emit(ctx context.Context, c *chunk) bool {
	c.done = make(chan struct{})
	select {
	case r.work <- c:
	case <-ctx.Done():
		close(c.done)
		nakFrom(c, 0)
		return false
	}
	select {
	case r.ordered <- c:
		return true
	case <-ctx.Done():
		<-c.done // the decoders finish every chunk they got
		nakFrom(c, 0)
		return false
	}
}

// nakFrom naks the messages of c from index i on; it returns how many.
func nakFrom(c *chunk, i int) int {
	for j := i; j < len(c.items); j++ {
		_ = c.items[j].msg.Nak() // the consumer may be gone: nothing to do
	}
	return max(0, len(c.items)-i)
}

// release naks what the reader handed on that the applier did not apply:
// the items of cur from index next on (cur may be nil), and every chunk
// still waiting. Call it after the reader stopped (start's wait returned).
func (r *reader) release(cur *chunk, next int) int {
	n := 0
	if cur != nil {
		<-cur.done
		n += nakFrom(cur, next)
	}
	for c := range r.ordered {
		<-c.done
		n += nakFrom(c, 0)
	}
	return n
}

func (r *reader) run(ctx context.Context) {
	defer close(r.ordered)
	defer close(r.work)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The consumer's own goroutine delivers in stream order and keeps pull
	// requests in flight; it hands every message to this goroutine.
	in := make(chan jetstream.Msg, 2*r.fetch)
	var errOnce sync.Once
	cc, err := r.cons.Consume(func(m jetstream.Msg) {
		if ctx.Err() != nil {
			_ = m.Nak() // stopping: not ours to apply any more
			return
		}
		select {
		case in <- m:
		case <-ctx.Done():
			_ = m.Nak()
		}
	}, jetstream.PullMaxMessages(2*r.fetch), jetstream.PullExpiry(pullExpiry), jetstream.PullHeartbeat(pullHeartbeat), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !consumerGone(err) && (errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoHeartbeat)) {
			// The pull requests go nowhere: is the consumer still there?
			if _, ierr := r.cons.Info(ctx); consumerGone(ierr) {
				err = ierr
			}
		}
		if consumerGone(err) {
			errOnce.Do(func() { r.err = err })
			cancel()
			return
		}
		r.log.Warn("consume", zap.Error(err))
	}))
	if err != nil {
		r.err = err
		return
	}
	c := r.get()
	defer func() {
		// Stop pulling, let the callback finish, then nak what is held.
		cc.Stop()
		select {
		case <-cc.Closed():
		case <-time.After(stopWait):
		}
		nakFrom(c, 0)
		for {
			select {
			case m := <-in:
				_ = m.Nak()
			default:
				return
			}
		}
	}()
	for {
		var msg jetstream.Msg
		select {
		case msg = <-in:
		default:
			if len(c.items) > 0 {
				if !r.emit(ctx, c) {
					c = r.get()
					return
				}
				c = r.get()
			}
			select {
			case msg = <-in:
			case <-ctx.Done():
				return
			}
		}
		c.items = append(c.items, item{msg: msg, recv: time.Now()})
		if len(c.items) == chunkSize {
			if !r.emit(ctx, c) {
				c = r.get()
				return
			}
			c = r.get()
		}
	}
}

func consumerGone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound)
}
