package labserve

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"time"

	"go.uber.org/zap"

	"github.com/gpsscan/gps/pkg/row"
)

// ErrSharded is returned by Update of a lab spread over helper processes,
// whose listeners this process does not hold.
var ErrSharded = errors.New("lab spread over helper processes")

// UpdateStats say what an Update did to the listeners.
type UpdateStats struct {
	Started int // services that got a listener
	Stopped int // services whose listener closed
	Changed int // services whose answer changed on the same listener
	Skipped int // new services whose address was taken
}

// Update makes the lab serve rows instead of what it serves: a service no
// longer there stops listening (connections already accepted run to their
// end), a new one starts, and one whose row changed answers its next
// connections with the new row. It is how a lab moves to another cycle of
// its world. Rows are checked as ServeRows checks them, and the lab is
// unchanged when they are bad.
func (l *Lab) Update(rows []row.Row) (UpdateStats, error) {
	var st UpdateStats
	if len(l.helpers) > 0 {
		return st, fmt.Errorf("update lab: %w", ErrSharded)
	}
	svcs, err := services(rows, l.opts.Include)
	if err != nil {
		return st, fmt.Errorf("update lab: %w", err)
	}
	l.umu.Lock()
	defer l.umu.Unlock()
	select {
	case <-l.stop:
		return st, fmt.Errorf("update lab: %w", ErrClosed)
	default:
	}
	start := time.Now()
	want := make(map[uint64]int, len(svcs))
	for i := range svcs {
		a, _ := row.ParseAddr(svcs[i].r.IP)
		want[svcKey(a, svcs[i].r.Port)] = i
	}
	var errs []error
	for k, x := range l.lns {
		if _, keep := want[k]; keep {
			continue
		}
		if err := x.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
		delete(l.lns, k)
		st.Stopped++
	}
	l.mu.Lock()
	l.skipped = nil // what was taken then may be free now: tried again below
	l.mu.Unlock()
	for i := range svcs {
		s := svcs[i]
		a, _ := row.ParseAddr(s.r.IP)
		if x, ok := l.lns[svcKey(a, s.r.Port)]; ok {
			if !reflect.DeepEqual(x.svc.Load().r, s.r) {
				x.svc.Store(&s)
				st.Changed++
			}
			continue
		}
		l.mu.Lock() // listenOne appends to skipped
		ok, err := l.listenOne(s)
		l.mu.Unlock()
		switch {
		case err != nil:
			errs = append(errs, err)
		case ok:
			st.Started++
		default:
			st.Skipped++
		}
	}
	l.mu.Lock()
	l.served = l.served[:0]
	ips := map[string]struct{}{}
	for _, s := range svcs {
		a, _ := row.ParseAddr(s.r.IP)
		if _, ok := l.lns[svcKey(a, s.r.Port)]; ok {
			l.served = append(l.served, s.r)
			ips[s.r.IP] = struct{}{}
		}
	}
	l.addrs = len(ips)
	served, addrs := len(l.served), l.addrs
	l.mu.Unlock()
	l.log.Info("lab updated", zap.Int("services", served), zap.Int("addresses", addrs), zap.Int("started", st.Started),
		zap.Int("stopped", st.Stopped), zap.Int("changed", st.Changed), zap.Int("skipped", st.Skipped),
		zap.Duration("elapsed", time.Since(start)))
	if err := errors.Join(errs...); err != nil {
		return st, fmt.Errorf("update lab: %w", err)
	}
	return st, nil
}
