package features

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gpsscan/gps/pkg/row"
)

// TestOfAllIsOfInOrder: OfAll on any number of goroutines emits, in order,
// what Of with intern true gives service after service, and leaves the
// dictionary with the same strings under the same ids, whether a service's
// strings are all known, partly new, new twice in one service, or new in
// several services of a batch.
func TestOfAllIsOfInOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	known := []string{"HTTP/1.1 200 OK", "Server: nginx", "", "SSH-2.0-OpenSSH_8.9", "220 mail ESMTP"}
	svcs := make([]row.Service, 3000)
	for i := range svcs {
		s := &svcs[i]
		s.Addr = r.Uint32()
		for j := range r.IntN(5) {
			if j > 0 {
				s.Data += "\n"
			}
			switch r.IntN(4) {
			case 0: // new to the batch, and maybe met again in it
				s.Data += fmt.Sprint("host-", r.IntN(400))
			default:
				s.Data += known[r.IntN(len(known))]
			}
		}
		s.Fingerprint = []string{"http", "ssh", "tls", "smtp"}[r.IntN(4)]
		if r.IntN(3) > 0 {
			a := int64(64500 + r.IntN(4))
			s.ASN = &a
		}
		if r.IntN(2) == 0 {
			w := int64([]int{64240, 29200, 65535}[r.IntN(3)])
			s.Window = &w
		}
		if s.Fingerprint == "tls" {
			c := fmt.Sprint("CN=c", r.IntN(50))
			s.TLSCert = &c
			s.TLSOIDs = []string{"2.5.29.17", "1.2.3", fmt.Sprint("1.3.6.1.4.", r.IntN(30))}
		}
	}
	ptrs := make([]*row.Service, len(svcs))
	for i := range svcs {
		ptrs[i] = &svcs[i]
	}
	// Some strings known before: the first services'.
	prime := func(d *Dict) {
		for _, s := range ptrs[:50] {
			d.Of(nil, s, true)
		}
	}
	want := NewDict()
	prime(want)
	var wantFeats [][]ID
	for _, s := range ptrs {
		wantFeats = append(wantFeats, want.Of(nil, s, true))
	}
	for _, workers := range []int{1, 2, 3, 4} {
		for _, chunk := range []int{100, 1000, len(ptrs)} {
			d := NewDict()
			prime(d)
			next := 0
			for lo := 0; lo < len(ptrs); lo += chunk {
				hi := min(lo+chunk, len(ptrs))
				d.OfAll(ptrs[lo:hi], workers, func(i int, feats []ID) {
					if lo+i != next {
						t.Fatalf("workers %d chunk %d: emitted service %d after %d", workers, chunk, lo+i, next-1)
					}
					if !slices.Equal(feats, wantFeats[next]) {
						t.Fatalf("workers %d chunk %d service %d: features %v, want %v", workers, chunk, next, feats, wantFeats[next])
					}
					next++
				})
			}
			if next != len(ptrs) {
				t.Fatalf("workers %d chunk %d: %d services emitted, want %d", workers, chunk, next, len(ptrs))
			}
			if !slices.Equal(d.strs, want.strs) {
				t.Fatalf("workers %d chunk %d: the dictionary differs from Of's (%d and %d strings)", workers, chunk, d.Len(), want.Len())
			}
			for s, id := range want.ids {
				if d.ids[s] != id {
					t.Fatalf("workers %d chunk %d: %q has id %d, want %d", workers, chunk, s, d.ids[s], id)
				}
			}
		}
	}
}
