package pipetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/wire"
	"github.com/gpsscan/gps/services/inventory"
)

// ReplayInventory is the oracle of the inventory: the state of every
// service after these results, read once in this order without a crash,
// and the number of events of each kind published on the way. A service
// is new at its first result and at its first after it went, changed when
// its protocol, data or certificate differ from its last answer's, gone
// at a gone result while live.
func ReplayInventory(results []wire.Result) (map[string]wire.ServiceState, map[string]int) {
	states := map[string]wire.ServiceState{}
	events := map[string]int{}
	for i := range results {
		r := &results[i]
		s, err := r.Service()
		if err != nil {
			continue
		}
		k := wire.InventoryKey(s.IP, s.Port)
		cur, seen := states[k]
		live := seen && cur.State == wire.StateLive
		if r.Gone {
			if live {
				t := r.Time
				cur.State, cur.GoneAt = wire.StateGone, &t
				states[k] = cur
				events[wire.EventGone]++
			}
			continue
		}
		st := wire.ServiceState{IP: s.IP, Port: s.Port, Protocol: s.Fingerprint, Data: s.Data, TLSCert: s.TLSCert,
			State: wire.StateLive, FirstSeen: r.Time, LastSeen: r.Time}
		switch {
		case !live:
			events[wire.EventNew]++
		case cur.Protocol != st.Protocol || cur.Data != st.Data || textOf(cur.TLSCert) != textOf(st.TLSCert):
			st.FirstSeen = cur.FirstSeen
			events[wire.EventChanged]++
		default:
			st.FirstSeen = cur.FirstSeen
		}
		states[k] = st
	}
	return states, events
}

func textOf(s *string) string {
	if s == nil {
		return "\x00nil"
	}
	return *s
}

// CheckInventory checks what must hold in any run, crash or not: the
// gps-inventory bucket holds exactly the state of every service that the
// RESULTS stream gives (ReplayInventory), and INVENTORY holds each of its
// events once.
func CheckInventory(t testing.TB, b *bus.Bus, o Outcome) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	kv, err := b.Inventory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := inventory.Load(ctx, kv)
	if err != nil {
		t.Fatal(err)
	}
	want, wantEvents := ReplayInventory(o.Results)
	if len(got) != len(want) {
		t.Errorf("the inventory holds %d services, RESULTS gives %d", len(got), len(want))
	}
	bad := 0
	for k, w := range want {
		g := got[k]
		switch {
		case g == nil:
			t.Errorf("%s: not in the inventory (want %s)", k, w.State)
		case g.State != w.State || !g.FirstSeen.Equal(w.FirstSeen) || !g.LastSeen.Equal(w.LastSeen) ||
			!sameTime(g.GoneAt, w.GoneAt) || g.Protocol != w.Protocol || g.Data != w.Data || textOf(g.TLSCert) != textOf(w.TLSCert):
			t.Errorf("%s: the inventory holds %s first %v last %v gone %v %q, RESULTS gives %s first %v last %v gone %v %q",
				k, g.State, g.FirstSeen, g.LastSeen, g.GoneAt, g.Data, w.State, w.FirstSeen, w.LastSeen, w.GoneAt, w.Data)
		default:
			continue
		}
		if bad++; bad == 10 {
			t.Fatalf("and more")
		}
	}
	gotEvents := map[string]int{}
	if err := b.EachMessage(ctx, bus.StreamInventory, func(d []byte) {
		var e wire.ServiceEvent
		if err := json.Unmarshal(d, &e); err != nil {
			t.Errorf("a bad inventory event: %v", err)
			return
		}
		gotEvents[e.Event]++
	}); err != nil {
		t.Fatal(err)
	}
	for _, ev := range []string{wire.EventNew, wire.EventChanged, wire.EventGone} {
		if gotEvents[ev] != wantEvents[ev] {
			t.Errorf("%d %s events on INVENTORY, RESULTS gives %d: some published twice or lost", gotEvents[ev], ev, wantEvents[ev])
		}
	}
}

func sameTime(a, b *time.Time) bool {
	return a == nil && b == nil || a != nil && b != nil && a.Equal(*b)
}
