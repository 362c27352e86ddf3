package schedule

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkRelease: releasing and reporting work from a queue of sweeps with
// predictions pushed between chunks, as gps-stream's replay does.
func BenchmarkRelease(b *testing.B) {
	for _, sweeps := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("sweeps=%d", sweeps), func(b *testing.B) {
			b.ReportAllocs()
			var s *Scheduler
			n := uint32(0)
			ctx := context.Background()
			for b.Loop() {
				if s == nil || s.Len() == 0 {
					b.StopTimer()
					var err error
					if s, err = New(Config{}); err != nil {
						b.Fatal(err)
					}
					for i := range sweeps {
						if err := s.PushSweep(Sweep{Prefix: uint32(i) << 16, Bits: 16, Port: uint16(i % 7), PriorHits: float64(1 + i%5), PriorProbes: 2000}, nil); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
				}
				w, ok, err := s.TryNext(ctx)
				if err != nil || !ok {
					b.Fatalf("ok %v, err %v", ok, err)
				}
				hits := 0
				if w.Kind == Chunk && n%3 == 0 {
					hits = 1
					s.Push(Target{Addr: w.First + 1, Port: 443}, 0.01, nil)
				}
				n++
				s.Report(w, hits)
			}
		})
	}
}
