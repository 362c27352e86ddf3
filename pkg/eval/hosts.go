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
	found map[uint32][]model.Found
	at    map[uint32]int // the model's size when each host was last predicted
	feats []features.ID
}

func newHostTracker(w *World, m *model.Model) *hostTracker {
	return &hostTracker{w: w, m: m, found: make(map[uint32][]model.Found), at: make(map[uint32]int)}
}

// answered records that t answered (isNew: it is new to the model, whose
// Adds are done) and returns the host's services to predict from, or ok
// false when the host need not be predicted again.
func (h *hostTracker) answered(t gps.Target, isNew bool) (found []model.Found, ok bool) {
	if at, seen := h.at[t.Addr]; seen && !isNew && !h.m.Stale(at) {
		return nil, false // found again, and the model has not learned enough to change its predictions
	}
	h.at[t.Addr] = h.m.Len()
	h.feats = h.feats[:0]
	dict := h.m.Dict() // after the Adds: it holds their strings
	for _, i := range h.w.byTarget[t] {
		h.feats = dict.Of(h.feats, &h.w.Truth[i], false)
	}
	found = model.AddFound(h.found[t.Addr], t.Port, h.feats)
	h.found[t.Addr] = found
	return found, true
}
