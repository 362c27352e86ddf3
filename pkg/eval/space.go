package eval

import "github.com/gpsscan/gps/pkg/explore"

// newSpace is the scanned address space of a world: its NSlash16 /16s,
// those of its truth and, for a world whose hosts leave /16s empty, the
// unused /16s of 127.1.0.0 .. 127.N.0.0 in order (Addresses counts them all).
func newSpace(w *World) *explore.Space {
	var used []uint32
	for t := range w.byTarget {
		used = append(used, t.Addr&^0xffff)
	}
	return explore.LabSpace(used, w.NSlash16)
}

// Space is the world's address space, which gps-stream-own seeds and sweeps.
func (w *World) Space() *explore.Space { return newSpace(w) }
