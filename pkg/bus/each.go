package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// requestTimeout bounds each request of a read (EachMessage, Follow,
// CatchUp) and each look of WaitIdle.
const requestTimeout = 5 * time.Second

// EachMessage reads a whole stream, as it is when the call starts (CatchUp
// up to its last sequence then); fn sees each message once, in order. It
// never ends early without an error.
func (b *Bus) EachMessage(ctx context.Context, stream string, fn func([]byte)) error {
	info, err := b.streamInfo(ctx, stream)
	if err != nil {
		return err
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	return b.CatchUp(ctx, stream, jetstream.OrderedConsumerConfig{}, func(msg jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
		if md.Sequence.Stream > last {
			return false, nil
		}
		fn(msg.Data())
		return md.Sequence.Stream < last, nil
	}, jetstream.PullMaxMessages(1000))
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
