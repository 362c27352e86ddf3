package features

import (
	"slices"
	"sync"
	"testing"

	"github.com/gpsscan/gps/pkg/row"
)

// TestConcurrentReaders: Of without interning never writes to the
// dictionary, gives the interned features, and readers run concurrently
// (go test -race).
func TestConcurrentReaders(t *testing.T) {
	w := int64(64240)
	asn := int64(64500)
	cert := "CN=x"
	svcs := []row.Service{
		{Addr: 0x7f010203, Row: row.Row{Data: "HTTP/1.1 200 OK\nServer: nginx", Fingerprint: "http", Window: &w, ASN: &asn}},
		{Addr: 0x7f010204, Row: row.Row{Data: "SSH-2.0-OpenSSH_8.9", Fingerprint: "ssh"}},
		{Addr: 0x7f020204, Row: row.Row{Data: "", Fingerprint: "tls", TLSCert: &cert, TLSOIDs: []string{"2.5.29.17", "1.2"}, ASN: &asn}},
	}
	d := NewDict()
	for i := range svcs {
		d.Of(nil, &svcs[i], false)
	}
	if d.Len() != 0 {
		t.Fatalf("Of without interning interned %d strings", d.Len())
	}
	want := make([][]ID, len(svcs))
	for i := range svcs {
		want[i] = d.Of(nil, &svcs[i], true)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				for i := range svcs {
					if got := d.Of([]ID{1}, &svcs[i], false); got[0] != 1 || !slices.Equal(got[1:], want[i]) {
						t.Errorf("service %d: Of appending = %v, want [1] + %v", i, got, want[i])
					}
					if got := d.Of(nil, &svcs[i], false); !slices.Equal(got, want[i]) {
						t.Errorf("service %d: Of = %v, want %v", i, got, want[i])
					}
				}
			}
		})
	}
	wg.Wait()
}
