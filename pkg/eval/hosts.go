package eval

import (
	"github.com/gpsscan/gps/pkg/features"
	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/model"
)

// hostTracker keeps each host's services found so far as the predictor
// keeps them, so that the replays predict a host as the predictor does:
// from all of them, and from a service found again only once the model has
// grown by a tenth since the host was last predicted (Model.Stale).
type hostTracker struct {
	w     *World
	m     *model.Model
	hosts map[uint32]*trackedHost
	feats []features.ID
}

// trackedHost is one host's state, all in one place: a replay looks it up
// once per service answered.
type trackedHost struct {
	found []model.Found
	at    int // the model's size when the host was last predicted
	// pushed is the best probability each port was pushed at, for a
	// replay that pushes a target again only higher (as the predictor
	// publishes); nil until the first push.
	pushed map[uint16]float64
}

func newHostTracker(w *World, m *model.Model) *hostTracker {
	return &hostTracker{w: w, m: m, hosts: make(map[uint32]*trackedHost)}
}

// answered records that t answered (isNew: it is new to the model, whose
// Adds are done) and returns the host, whose found services to predict
// from, or ok false when the host need not be predicted again.
func (h *hostTracker) answered(t gps.Target, isNew bool) (host *trackedHost, ok bool) {
	host = h.hosts[t.Addr]
	if host == nil {
		host = &trackedHost{}
		h.hosts[t.Addr] = host
	} else if !isNew && !h.m.Stale(host.at) {
		return nil, false // found again, and the model has not learned enough to change its predictions
	}
	host.at = h.m.Len()
	h.feats = h.feats[:0]
	dict := h.m.Dict() // after the Adds: it holds their strings
	for _, i := range h.w.byTarget[t] {
		h.feats = dict.Of(h.feats, &h.w.Truth[i], false)
	}
	host.found = model.AddFound(host.found, t.Port, h.feats)
	return host, true
}

// raise records a push of port at probability p, and reports false when
// the port was pushed at p or higher before.
func (host *trackedHost) raise(port uint16, p float64) bool {
	if p <= host.pushed[port] {
		return false
	}
	if host.pushed == nil {
		host.pushed = make(map[uint16]float64)
	}
	host.pushed[port] = p
	return true
}
