package features

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gpsscan/gps/pkg/row"
)

// TestOfSortedDistinct: Of emits sorted, distinct IDs (it sorts only the data
// ids and relies on the kind order for the rest), each its own string, after
// what dst held.
func TestOfSortedDistinct(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	lines := []string{"a", "b", "", "Server: x", "SSH-2.0-Y", "a"}
	d := NewDict()
	for i := range 2000 {
		s := row.Service{Addr: r.Uint32()}
		n := r.IntN(6)
		for j := range n {
			if j > 0 {
				s.Data += "\n"
			}
			s.Data += lines[r.IntN(len(lines))]
		}
		s.Fingerprint = []string{"http", "ssh", "tls", ""}[r.IntN(4)]
		if r.IntN(2) == 0 {
			a := int64(r.IntN(5))
			s.ASN = &a
		}
		if r.IntN(2) == 0 {
			w := int64(r.IntN(3))
			s.Window = &w
		}
		if s.Fingerprint == "tls" {
			c := fmt.Sprint("c", r.IntN(3))
			s.TLSCert = &c
			s.TLSOIDs = []string{"1.2.3.4.5.6", "2.5.29.17", "2.5.29.17"}
		}
		prefix := []ID{ID(i)} // Of appends after what dst holds
		got := d.Of(slices.Clone(prefix), &s, i%3 != 0)
		if got[0] != prefix[0] {
			t.Fatal("Of changed dst's contents")
		}
		got = got[1:]
		for j := 1; j < len(got); j++ {
			if got[j] <= got[j-1] {
				t.Fatalf("service %d: features not sorted and distinct: %v", i, got)
			}
		}
		want := map[string]bool{}
		for _, f := range got {
			want[d.String(f)] = true
		}
		if len(want) != len(got) {
			t.Fatalf("service %d: %d features render as %d strings", i, len(got), len(want))
		}
	}
}
