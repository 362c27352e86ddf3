package modeler

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// BenchmarkModelerIngest measures the modeler consuming results already in
// RESULTS (about 215k seed results of a lab world), from a fresh start to
// the last result applied and counted: published in batches as the seeder and the
// prober publish them, one result a message for comparison, and in batches
// with the hosts' results interleaved.
func BenchmarkModelerIngest(b *testing.B) {
	w := labtest.World(b, lab.Config{Seed: 1, Hosts: 100000, Slash16s: 8, SeedFrac: 1})
	b.Run("batched", func(b *testing.B) { benchIngest(b, w.Seed, true) })
	b.Run("single", func(b *testing.B) { benchIngest(b, w.Seed, false) })
	// Results of many hosts interleaved, as a scan's come.
	shuffled := slices.Clone(w.Seed)
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	b.Run("batched-interleaved", func(b *testing.B) { benchIngest(b, shuffled, true) })
}

func benchIngest(b *testing.B, rows []row.Row, batched bool) {
	bs := bustest.New(b)
	var last uint64
	if batched {
		last = publishBatches(b, bs, rows, wire.PhaseSeed)
	} else {
		last = publish(b, bs, rows, wire.PhaseSeed)
	}
	store, err := bs.Snapshots(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{}
	cfg.SnapshotEvery = 1 << 30
	cfg.SnapshotInterval = time.Hour
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := store.Delete(context.Background(), SnapshotObject); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		st := &Stats{}
		done := make(chan error, 1)
		began := time.Now()
		b.StartTimer()
		go func() { done <- Run(ctx, Deps{Config: cfg, Bus: bs, Log: zap.NewNop(), Stats: st}) }()
		for st.Counted.Load() != last { // applied, and counted up to the last
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		total += time.Since(began)
		cancel()
		<-done
		if got := st.Results.Load(); got != int64(len(rows)) {
			b.Fatalf("%d results applied, want %d", got, len(rows))
		}
	}
	b.ReportMetric(float64(len(rows))*float64(b.N)/total.Seconds(), "results/s")
}
