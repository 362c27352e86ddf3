package inventory

import (
	"github.com/gpsscan/gps/internal/resultpipe"
	"github.com/gpsscan/gps/pkg/wire"
)

// next is the state of a service after result r (of RESULTS sequence seq),
// from its state cur (nil: never seen), and the event it makes ("": none).
// It returns nil when r changes nothing (a gone result of a service not
// live). A service back after it was gone is new again, a new life:
// first_seen is its return.
func next(cur *wire.ServiceState, r *resultpipe.Result, seq uint64) (*wire.ServiceState, string) {
	live := cur != nil && cur.State == wire.StateLive
	if r.Gone {
		if !live {
			return nil, ""
		}
		st := *cur
		t := r.Time
		st.State, st.GoneAt, st.Seq = wire.StateGone, &t, seq
		return &st, wire.EventGone
	}
	row := &r.Svc.Row
	st := wire.ServiceState{V: wire.Version, IP: row.IP, Port: row.Port, Protocol: row.Fingerprint, Data: row.Data,
		TLSCert: row.TLSCert, ASN: row.ASN, State: wire.StateLive, FirstSeen: r.Time, LastSeen: r.Time, Seq: seq}
	if !live {
		return &st, wire.EventNew
	}
	st.FirstSeen = cur.FirstSeen
	if changed(cur, &st) {
		return &st, wire.EventChanged
	}
	return &st, ""
}

// changed reports whether what a service answers changed: its protocol,
// its data or its certificate.
func changed(a, b *wire.ServiceState) bool {
	return a.Protocol != b.Protocol || a.Data != b.Data || !sameCert(a.TLSCert, b.TLSCert)
}

func sameCert(a, b *string) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}
