package batch

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
)

// BenchmarkFirstPaperScale is `gps first` on a seed the size of the paper's
// 1 % IPv4 seed: about 1 million hosts and 3 million services. It reports
// the wall time of one run and the peak resident memory of the process.
// Skipped with -short; run it with
//
//	go test ./pkg/batch -run '^$' -bench FirstPaperScale -benchtime 1x
func BenchmarkFirstPaperScale(b *testing.B) {
	if testing.Short() {
		b.Skip("paper scale skipped in -short")
	}
	dir := b.TempDir()
	seed := filepath.Join(dir, "seed.jsonl")
	f, err := os.Create(seed)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	enc := json.NewEncoder(bw)
	n := 0
	if err := lab.GenerateSeed(lab.Config{Seed: 1, Hosts: 1_000_000, PseudoFrac: lab.PaperPseudoFrac}.WithDefaults(), func(r row.Row) {
		if err := enc.Encode(r); err != nil {
			b.Fatal(err)
		}
		n++
	}); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	b.Logf("seed: %d services", n)
	b.ResetTimer()
	for b.Loop() {
		if _, err := First(FirstConfig{Seed: seed, Out: filepath.Join(dir, "out"), Hitrate: gps.DefaultHitrate, Step: gps.DefaultStep}, zap.NewNop()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MiB")
	}
	b.ReportMetric(float64(n), "seed-services")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/run")
}
