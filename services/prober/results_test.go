package prober

import (
	"context"
	"fmt"
	"testing"

	"github.com/gpsscan/gps/internal/servicetest"
	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// gated answers every probe at once, except the probes of port 2, which
// wait until gate is closed.
type gated struct {
	counting
	gate chan struct{}
}

func (g *gated) Probe(ctx context.Context, addr uint32, port uint16) (row.Row, bool, error) {
	if port == 2 {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return row.Row{}, false, ctx.Err()
		}
	}
	return g.counting.Probe(ctx, addr, port)
}

// TestResultsBatched: the services found for one message go out in
// batches of at most wire.BatchResults, every one stored once; and a
// service found before a slow probe is published without waiting for it
// (wire.BatchDelay), not at the end of the message.
func TestResultsBatched(t *testing.T) {
	b := bustest.New(t)
	resp := &gated{gate: make(chan struct{})}
	st := start(t, b, Deps{Config: Config{Allow: []string{"127.1.0.0/16"}, Concurrency: 1}, Responder: resp})

	const n = 2*wire.BatchResults + 20
	var ts []wire.Target
	for i := range n {
		ts = append(ts, wire.Target{IP: fmt.Sprintf("127.1.%d.%d", i/200, i%200+1), Port: 80})
	}
	publish(t, b, wire.TargetsSubject(wire.PhaseSeed), "many", targetsMsg(wire.PhaseSeed, ts...))
	servicetest.WaitFor(t, "the targets", func() bool { return st.Targets.Load() == 1 })
	msgs := servicetest.Stored(t, b, bus.StreamResults)
	rs := decodeResults(t, msgs) // checks each batch's size and Nats-Msg-Id
	seen := map[string]bool{}
	for _, r := range rs {
		seen[fmt.Sprintf("%s:%d", r.IP, r.Port)] = true
	}
	if len(rs) != n || len(seen) != n || st.Found.Load() != n {
		t.Fatalf("%d results (%d distinct, found %d) for %d services", len(rs), len(seen), st.Found.Load(), n)
	}
	if len(msgs) >= n {
		t.Fatalf("%d messages for %d results: not batched", len(msgs), n)
	}

	// One service found, then a probe that does not end: the service is
	// stored meanwhile.
	publish(t, b, wire.TargetsSubject(wire.PhasePriors), "slow", targetsMsg(wire.PhasePriors,
		wire.Target{IP: "127.1.9.1", Port: 1}, wire.Target{IP: "127.1.9.1", Port: 2}))
	servicetest.WaitFor(t, "the first service, while the second probe waits", func() bool {
		return len(servicetest.Stored(t, b, bus.StreamResults)) == len(msgs)+1
	})
	if st.Targets.Load() != 1 {
		t.Fatal("the slow message finished before its gate opened")
	}
	close(resp.gate)
	servicetest.WaitFor(t, "the slow message", func() bool { return st.Targets.Load() == 2 })
	if got := decodeResults(t, servicetest.Stored(t, b, bus.StreamResults)[len(msgs):]); len(got) != 2 || got[0].Port != 1 || got[1].Port != 2 {
		t.Fatalf("slow message's results %+v, want ports 1 then 2", got)
	}
}
