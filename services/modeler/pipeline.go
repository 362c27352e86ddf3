package modeler

import (
	"context"
	"errors"
	"runtime"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// chunkSize is the most messages handed on at once between the stages.
const chunkSize = 128

// item is one message and what it decodes to.
type item struct {
	msg    jetstream.Msg
	seq    uint64 // RESULTS stream sequence
	noMeta bool   // not a JetStream message
	svc    row.Service
	phase  string
	err    error // not a usable result: dead-letter it
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
// once. (The predictor has the same pipeline.)
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
	it.phase, it.err = r.Phase, err
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
// applier gets is always decoded in the end.
func (r *reader) emit(ctx context.Context, c *chunk) bool {
	c.done = make(chan struct{})
	select {
	case r.work <- c:
	case <-ctx.Done():
		return false
	}
	select {
	case r.ordered <- c:
		return true
	case <-ctx.Done():
		return false
	}
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
		select {
		case in <- m:
		case <-ctx.Done():
		}
	}, jetstream.PullMaxMessages(2*r.fetch), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
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
	defer cc.Stop()
	c := r.get()
	for {
		var msg jetstream.Msg
		select {
		case msg = <-in:
		default:
			if len(c.items) > 0 {
				if !r.emit(ctx, c) {
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
		c.items = append(c.items, item{msg: msg})
		if len(c.items) == chunkSize {
			if !r.emit(ctx, c) {
				return
			}
			c = r.get()
		}
	}
}

func consumerGone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound)
}
