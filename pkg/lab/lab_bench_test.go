package lab

import (
	"fmt"
	"testing"

	"github.com/gpsscan/gps/pkg/row"
)

// BenchmarkGenerateSeed streams a paper-scale seed: a million hosts, about
// three million services.
func BenchmarkGenerateSeed(b *testing.B) {
	for _, hosts := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n = 0
				if err := GenerateSeed(Config{Seed: 1, Hosts: hosts}, func(row.Row) { n++ }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n), "services")
		})
	}
}

// BenchmarkGenerate builds a whole world of 100,000 hosts.
func BenchmarkGenerate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Generate(Config{Seed: 1, Hosts: 100_000}); err != nil {
			b.Fatal(err)
		}
	}
}
