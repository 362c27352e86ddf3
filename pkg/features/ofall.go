package features

import (
	"sync"

	"github.com/gpsscan/gps/pkg/row"
)

// OfAll computes the features of every service of svcs, interning their new
// data strings, on up to workers goroutines, and calls emit(i, features of
// svcs[i]) for each in order, on the calling goroutine (feats is only valid
// during the call). The dictionary ends exactly as if Of(dst, svcs[i], true)
// had been called for each in order: the same strings get the same ids.
//
// The goroutines only read the dictionary. A service whose data strings
// are all known is done by them; one with a new string (a unique banner
// line, on about half of the services of a big seed) keeps the ids of its
// known strings and the bytes of its new ones, which are interned
// afterwards, in order, on the calling goroutine. Most of the work (the
// strings built, hashed and looked up) is thus spread over the cores, and
// the order of the ids is kept.
func (d *Dict) OfAll(svcs []*row.Service, workers int, emit func(i int, feats []ID)) {
	if workers < 1 || len(svcs) < workers*minOfAllPart {
		for i, s := range svcs {
			d.scratch = d.Of(d.scratch[:0], s, true)
			emit(i, d.scratch)
		}
		return
	}
	if len(d.parts) < workers {
		d.parts = make([]ofPart, workers)
	}
	var wg sync.WaitGroup
	for w := range workers {
		p := &d.parts[w]
		lo, hi := len(svcs)*w/workers, len(svcs)*(w+1)/workers
		wg.Go(func() { p.run(d, svcs[lo:hi]) })
	}
	wg.Wait()
	i := 0
	for w := range workers {
		p := &d.parts[w]
		start, id0, miss0, mi := uint32(0), uint32(0), uint32(0), 0
		for _, e := range p.ends {
			if e&missed == 0 {
				emit(i, p.feats[start:e])
				start = e
				i++
				continue
			}
			// Its known strings' ids, then its new strings, interned in
			// the order Of would have met them.
			r := p.missed[mi]
			mi++
			ids := append(d.scratchI[:0], p.ids[id0:r.ids]...)
			for k := miss0; k < r.miss; k++ {
				lo := uint32(0)
				if k > 0 {
					lo = p.miss.ends[k-1]
				}
				if id, ok := d.lookup(p.miss.b[lo:p.miss.ends[k]], true); ok {
					ids = append(ids, id)
				}
			}
			id0, miss0 = r.ids, r.miss
			d.scratchI = ids
			d.scratch = assemble(d.scratch[:0], ids, svcs[i])
			emit(i, d.scratch)
			i++
		}
		p.shrink()
	}
}

// ofPart is a goroutine's share of OfAll: the features of its services
// whose strings were all known, one after the other, and where each ends
// (or missed, for a service with a new string); for those, the ids of
// their known strings and their new strings, one service after the other,
// and where each service's end in both.
type ofPart struct {
	feats  []ID
	ends   []uint32
	ids    []uint32
	miss   misses
	missed []missedEnd
}

type missedEnd struct{ ids, miss uint32 }

func (p *ofPart) run(d *Dict, svcs []*row.Service) {
	p.feats, p.ends, p.ids, p.missed = p.feats[:0], p.ends[:0], p.ids[:0], p.missed[:0]
	p.miss.b, p.miss.ends = p.miss.b[:0], p.miss.ends[:0]
	var local [32]uint32
	for _, s := range svcs {
		n := len(p.miss.ends)
		ids := d.dataIDs(local[:0], s, false, &p.miss)
		if len(p.miss.ends) == n {
			p.feats = assemble(p.feats, ids, s)
			p.ends = append(p.ends, uint32(len(p.feats)))
			continue
		}
		p.ids = append(p.ids, ids...)
		p.missed = append(p.missed, missedEnd{uint32(len(p.ids)), uint32(len(p.miss.ends))})
		p.ends = append(p.ends, uint32(len(p.feats))|missed)
	}
}

// shrink lets the scratch of a rare big batch go.
func (p *ofPart) shrink() {
	if cap(p.feats) > 1<<20 && len(p.feats) < cap(p.feats)/8 {
		*p = ofPart{}
	}
}

// A goroutine of OfAll takes at least minOfAllPart services: fewer are
// done on the calling goroutine, for less than starting one costs.
const minOfAllPart = 128

const missed = 1 << 31
