package watch_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/services/watch"
)

// TestRun prints what a phase and a limit select, to the stream's end, and
// with Follow what comes next, until ctx ends.
func TestRun(t *testing.T) {
	ctx := context.Background()
	b := bustest.New(t)
	for i := range 6 { // 0..5, the odd ones refreshes
		subj := "gps.results.seed"
		if i%2 == 1 {
			subj = "gps.results.refresh"
		}
		if err := b.Publish(ctx, subj, "m"+strconv.Itoa(i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		c    watch.Config
		want string
	}{
		{"all", watch.Config{What: "results"}, "0\n1\n2\n3\n4\n5\n"},
		{"phase", watch.Config{What: "results", Phase: "refresh"}, "1\n3\n5\n"},
		{"limit", watch.Config{What: "results", Limit: 2}, "0\n1\n"},
		{"new", watch.Config{What: "results", New: true}, ""},
		{"empty", watch.Config{What: "predictions"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			if err := watch.Run(rctx, watch.Deps{Config: tc.c, Bus: b, Log: zap.NewNop(), Out: &out}); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Fatalf("printed %q, want %q", out.String(), tc.want)
			}
		})
	}
	t.Run("follow", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pr.Close() // a Run the test gave up on cannot write
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		errc := make(chan error, 1)
		go func() {
			errc <- watch.Run(rctx, watch.Deps{Config: watch.Config{What: "results", Phase: "seed", Follow: true}, Bus: b, Log: zap.NewNop(), Out: pw})
		}()
		// What is there is printed before the wait for more; then what comes.
		lines := bufio.NewReader(pr)
		read := func(want string) {
			t.Helper()
			for _, w := range strings.SplitAfter(want, "\n")[:strings.Count(want, "\n")] {
				if got, err := lines.ReadString('\n'); err != nil || got != w {
					t.Fatalf("printed %q (%v), want %q", got, err, w)
				}
			}
		}
		read("0\n2\n4\n")
		if err := b.Publish(ctx, "gps.results.seed", "m6", []byte("6")); err != nil {
			t.Fatal(err)
		}
		read("6\n")
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return in 10s after its context ended")
		}
	})
}

// gatedWriter holds its first write until release is closed.
type gatedWriter struct {
	first, release chan struct{}
	once           sync.Once
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.once.Do(func() {
		close(g.first)
		<-g.release
	})
	return len(p), nil
}

// TestRunServerGone follows a stream whose server goes away while Run
// prints what was there, and checks Run returns once ctx ends: each fetch
// of its ordered consumer re-created the consumer without end while the
// server was gone, and nothing cancelled that.
func TestRunServerGone(t *testing.T) {
	ctx := context.Background()
	srv := bustest.New(t)
	a := srv.Async(500)
	for i := range 3000 { // more than Run pulls at once
		if err := a.Publish(ctx, "gps.results.seed", "m"+strconv.Itoa(i), []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	b := bustest.Connect(t, srv.ClientURL())
	out := &gatedWriter{first: make(chan struct{}), release: make(chan struct{})}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- watch.Run(rctx, watch.Deps{Config: watch.Config{What: "results", Follow: true}, Bus: b, Log: zap.NewNop(), Out: out})
	}()
	select {
	case <-out.first:
	case err := <-errc:
		t.Fatalf("Run returned before it printed: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("nothing printed in 10s")
	}
	if err := srv.Close(); err != nil { // the embedded server with it
		t.Fatal(err)
	}
	close(out.release)
	cancel()
	select {
	case <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return in 10s after its context ended")
	}
}
