package bus_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
)

// TestReadServerGone starts a read of a stream, shuts the server down (or
// deletes the stream) in the middle and checks the read returns, with an
// error, once its context ends: an ordered consumer's Fetch re-created its
// consumer without end while it could not, and nothing cancelled it.
func TestReadServerGone(t *testing.T) {
	each := func(ctx context.Context, b *bus.Bus, fn func()) error {
		return b.EachMessage(ctx, bus.StreamResults, func([]byte) { fn() })
	}
	follow := func(ctx context.Context, b *bus.Bus, fn func()) error {
		return b.Follow(ctx, bus.StreamResults, jetstream.OrderedConsumerConfig{}, func(jetstream.Msg, *jetstream.MsgMetadata) (bool, error) {
			fn()
			return true, nil
		})
	}
	shutDown := func(srv *bus.Bus) error { return srv.Close() } // the embedded server with it
	deleteStream := func(srv *bus.Bus) error { return srv.JS.DeleteStream(context.Background(), bus.StreamResults) }
	for _, tc := range []struct {
		name string
		read func(ctx context.Context, b *bus.Bus, fn func()) error
		gone func(srv *bus.Bus) error
	}{
		{"EachMessage, server shut down", each, shutDown},
		{"Follow, server shut down", follow, shutDown},
		{"EachMessage, stream deleted", each, deleteStream},
		{"Follow, stream deleted", follow, deleteStream},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			srv := bustest.New(t)
			const n = 1500 // more than one pull of any reader
			a := srv.Async(500)
			for i := range n {
				if err := a.Publish(ctx, "gps.results.seed", "m"+strconv.Itoa(i), []byte(strconv.Itoa(i))); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			b := bustest.Connect(t, srv.ClientURL())
			rctx, cancel := context.WithCancel(ctx)
			defer cancel()
			first, release := make(chan struct{}), make(chan struct{})
			got := 0
			errc := make(chan error, 1)
			go func() {
				errc <- tc.read(rctx, b, func() {
					if got++; got == 1 {
						close(first)
						<-release
					}
				})
			}()
			select {
			case <-first:
			case err := <-errc:
				t.Fatalf("read returned before its first message: %v", err)
			case <-time.After(10 * time.Second):
				t.Fatal("no message read in 10s")
			}
			if err := tc.gone(srv); err != nil {
				t.Fatal(err)
			}
			close(release)
			cancel()
			select {
			case err := <-errc:
				if err == nil {
					t.Fatal("a read cut short by its context returned no error")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the read did not return in 10s after its context ended")
			}
		})
	}
}

// TestCatchUp reads what a config selects, as it is at the start, and ends
// there; Follow goes on with what comes next.
func TestCatchUp(t *testing.T) {
	ctx := context.Background()
	b := bustest.New(t)
	const n = 10 // results 0..9 at sequences 1..10, the odd ones refreshes
	for i := range n {
		subj := "gps.results.seed"
		if i%2 == 1 {
			subj = "gps.results.refresh"
		}
		if err := b.Publish(ctx, subj, "m"+strconv.Itoa(i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	read := func(t *testing.T, stream string, cfg jetstream.OrderedConsumerConfig, stop int) string {
		t.Helper()
		var got string
		fn := func(msg jetstream.Msg, _ *jetstream.MsgMetadata) (bool, error) {
			got += string(msg.Data())
			return len(got) < stop, nil
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := b.CatchUp(rctx, stream, cfg, fn); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, tc := range []struct {
		name   string
		stream string
		cfg    jetstream.OrderedConsumerConfig
		stop   int // fn ends the read after this many messages
		want   string
	}{
		{"all", bus.StreamResults, jetstream.OrderedConsumerConfig{}, 100, "0123456789"},
		{"filtered", bus.StreamResults, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"gps.results.refresh"}}, 100, "13579"},
		{"from a sequence", bus.StreamResults, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: 8}, 100, "789"},
		{"past the end", bus.StreamResults, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: n + 1}, 100, ""},
		{"new only", bus.StreamResults, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}, 100, ""},
		{"empty stream", bus.StreamPredictions, jetstream.OrderedConsumerConfig{}, 100, ""},
		{"ended by fn", bus.StreamResults, jetstream.OrderedConsumerConfig{}, 3, "012"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := read(t, tc.stream, tc.cfg, tc.stop); got != tc.want {
				t.Fatalf("read %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("follow", func(t *testing.T) {
		// At the end, the read waits for a message published then.
		var got string
		fn := func(msg jetstream.Msg, _ *jetstream.MsgMetadata) (bool, error) {
			if got += string(msg.Data()); got == "9" {
				return true, b.Publish(ctx, "gps.results.seed", "m"+strconv.Itoa(n), []byte("a"))
			}
			return false, nil
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: n}
		if err := b.Follow(rctx, bus.StreamResults, cfg, fn); err != nil {
			t.Fatal(err)
		}
		if got != "9a" {
			t.Fatalf("read %q, want %q", got, "9a")
		}
	})
}

// TestFollowServerRestart follows a stream through a restart of its server
// and reads what is published after it.
func TestFollowServerRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	start := func(listen string) *bus.Bus {
		t.Helper()
		srv, err := bus.Connect(ctx, bus.Config{DataDir: dir, Listen: listen, Name: t.Name()}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		return srv
	}
	srv := start("127.0.0.1:-1")
	if err := srv.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Publish(ctx, "gps.results.seed", "m0", []byte("0")); err != nil {
		t.Fatal(err)
	}
	url := srv.ClientURL()
	b := bustest.Connect(t, url)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	got := make(chan string, 2)
	errc := make(chan error, 1)
	go func() {
		n := 0
		errc <- b.Follow(rctx, bus.StreamResults, jetstream.OrderedConsumerConfig{}, func(msg jetstream.Msg, _ *jetstream.MsgMetadata) (bool, error) {
			got <- string(msg.Data())
			n++
			return n < 2, nil
		})
	}()
	if m := <-got; m != "0" {
		t.Fatalf("read %q, want %q", m, "0")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	srv = start(strings.TrimPrefix(url, "nats://"))
	if err := srv.Publish(ctx, "gps.results.seed", "m1", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != "1" {
		t.Fatalf("read %q after the restart, want %q", m, "1")
	}
}
