package labserve

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/gpsscan/gps/internal/labtest"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
)

// shifted moves an address into this package's part of the lab, as
// writeWorld does.
func shifted(t *testing.T, ip string) string {
	t.Helper()
	a, err := row.ParseAddr(ip)
	if err != nil {
		t.Fatal(err)
	}
	return row.FormatAddr(a + testBase<<16)
}

func rowsOf(ss []row.Service) []row.Row {
	out := make([]row.Row, len(ss))
	for i := range ss {
		out[i] = ss[i].Row
	}
	return out
}

// TestServeCycles serves cycle 0 of a changing world, then moves the lab to
// cycles 1 and 2: gone services refuse, new and moved ones answer, changed
// ones answer with their new banner.
func TestServeCycles(t *testing.T) {
	labtest.Lock(t)
	w := labtest.World(t, lab.Config{Seed: 3, Hosts: 300, Slash16s: 1, Cycles: 2, Churn: 10})
	var truth []row.Service
	for _, r := range w.Truth {
		r.IP = shifted(t, r.IP)
		a, _ := row.ParseAddr(r.IP)
		truth = append(truth, row.Service{Row: r, Addr: a})
	}
	snap := lab.NewSnapshot(truth)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := ServeRows(ctx, rowsOf(snap.Services()), Options{IdleTimeout: 5 * time.Second}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	roots := x509.NewCertPool()
	roots.AddCert(l.CA())
	for k, cs := range w.Changes {
		for i := range cs {
			c := &cs[i]
			if c.Row != nil {
				r := *c.Row
				r.IP = shifted(t, r.IP)
				c.Row = &r
			}
			if c.IP != "" {
				c.IP = shifted(t, c.IP)
			}
			if c.To != "" {
				c.To = shifted(t, c.To)
			}
		}
		before := map[string]row.Row{}
		for _, r := range rowsOf(snap.Services()) {
			before[addrOf(r)] = r
		}
		if err := snap.Apply(cs); err != nil {
			t.Fatal(err)
		}
		after := rowsOf(snap.Services())
		st, err := l.Update(after)
		if err != nil {
			t.Fatal(err)
		}
		counts := lab.CountChanges(cs)
		if counts.Moved == 0 || counts.Added == 0 || counts.Gone == 0 {
			t.Fatalf("cycle %d changes too little to test: %+v", k+1, counts)
		}
		var want UpdateStats
		now := map[string]bool{}
		for _, r := range after {
			now[addrOf(r)] = true
			switch b, ok := before[addrOf(r)]; {
			case !ok:
				want.Started++
			case b.Data != r.Data:
				want.Changed++
			}
		}
		for a := range before {
			if !now[a] {
				want.Stopped++
			}
		}
		want.Started -= st.Skipped
		want.Skipped = st.Skipped
		if st != want {
			t.Fatalf("cycle %d: update %+v, want %+v", k+1, st, want)
		}
		if got := len(l.Services()) + len(l.Skipped()); got != len(after) {
			t.Fatalf("cycle %d: served %d + skipped %d, want %d", k+1, len(l.Services()), len(l.Skipped()), len(after))
		}
		checkAll(t, l.Services(), roots)
		for a := range before {
			if now[a] {
				continue
			}
			c, err := net.DialTimeout("tcp4", a, time.Second)
			if err == nil {
				c.Close()
				t.Fatalf("cycle %d: %s is gone but accepts", k+1, a)
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("cycle %d: gone %s: %v, want connection refused", k+1, a, err)
			}
		}
	}
	l.Close()
	if _, err := l.Update(nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("update after close: %v", err)
	}
}
