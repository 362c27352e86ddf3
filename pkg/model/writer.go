package model

import (
	"fmt"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gpsscan/gps/pkg/features"
)

// A writer makes the changes of host sets and counts. The model's own (Model.w)
// makes them one by one, in its arenas. A parallel flush has one per
// goroutine: each changes only the keys of its part of the key table, with
// shards of the arenas of its own, and the host sets that become bitmaps
// wait in it until the flush joins them into Model.bitmaps.
type writer struct {
	m      *Model
	co, hl *shard
	par    bool              // one of a parallel flush
	bms    []*roaring.Bitmap // par: bitmaps made, addressed parBit | index
	bmKeys []*keyStat        // par: their keys
	sink   uint64            // keeps the loads of touch

	// Scratch of keysParallel.
	newKeys []newKey // the keys it made, in order
	later   []int    // its occurrences to find keys for alone, after

	// Scratch of count.
	crossed []uint32 // keys that reached MinCount in the batch
	isCross []uint64 // bit set of crossed, by key
	dense   []uint32 // counts by port, zero between uses
	ports   []uint16 // the ports with a count in dense
}

// parBit marks a host set made a bitmap in a parallel flush, still in its
// writer's bms.
const parBit = 1 << 31

// bitmap is the host set of key ks, of more than listHosts hosts.
func (w *writer) bitmap(ks *keyStat) *roaring.Bitmap {
	if i := ks.hosts[0]; i&parBit != 0 {
		return w.bms[i&^parBit]
	}
	return w.m.bitmaps[ks.hosts[0]]
}

// newBitmap keeps b as the host set of key ks and returns its index.
func (w *writer) newBitmap(ks *keyStat, b *roaring.Bitmap) uint32 {
	if !w.par {
		return w.m.newBitmap(b)
	}
	w.bms = append(w.bms, b)
	w.bmKeys = append(w.bmKeys, ks)
	return parBit | uint32(len(w.bms)-1)
}

// joinBitmaps moves the bitmaps a parallel writer made into the model.
func (w *writer) joinBitmaps() {
	for i, ks := range w.bmKeys {
		ks.hosts[0] = w.m.newBitmap(w.bms[i])
		w.bms[i], w.bmKeys[i] = nil, nil
	}
	w.bms, w.bmKeys = w.bms[:0], w.bmKeys[:0]
}

// touch loads the keys of ids and then their count lists and host lists,
// in loops without dependencies between iterations, so that their cache
// misses overlap instead of coming one by one in the updates that follow.
func (w *writer) touch(ids []uint32) {
	m := w.m
	var sink uint64
	for _, k := range ids {
		sink += uint64(m.keys.at(k).coLen)
	}
	for _, k := range ids {
		ks := m.keys.at(k)
		if ks.coLen > 0 {
			sink += uint64(m.co.at(ks.co).N)
		}
		if ks.support > inlineHosts && ks.support <= listHosts {
			sink += uint64(*m.hl.at(ks.hosts[0]))
		}
	}
	w.sink = sink
}

// addHost adds host hid (not in it) to the host set of key ks, and makes
// the key's counts if it reaches MinCount hosts.
func (w *writer) addHost(ks *keyStat, hid uint32) {
	w.addHostSet(ks, hid)
	if ks.support == MinCount {
		w.materialise(ks, hid)
	}
}

// addHostSet adds host hid (not in it) to the host set of key ks.
func (w *writer) addHostSet(ks *keyStat, hid uint32) {
	m := w.m
	ok := true
	switch n := int(ks.support); {
	case n < inlineHosts:
		ok = insertSorted(ks.hosts[:n+1], hid)
	case n < listHosts:
		var off uint32
		if n == inlineHosts {
			off = m.hl.allocIn(w.hl, classOf(n+1))
			copy(m.hl.block(off, n), ks.hosts[:])
			ks.hosts = [inlineHosts]uint32{}
		} else {
			off = m.hl.resizeIn(w.hl, ks.hosts[0], n, n+1)
		}
		ks.hosts[0] = off
		ok = insertSorted(m.hl.block(off, n+1), hid)
	case n == listHosts:
		off := ks.hosts[0]
		b := roaring.BitmapOf(m.hl.block(off, n)...)
		m.hl.releaseIn(w.hl, off, classOf(n))
		ok = b.CheckedAdd(hid)
		ks.hosts[0] = w.newBitmap(ks, b)
	default:
		ok = w.bitmap(ks).CheckedAdd(hid)
	}
	if !ok {
		panic(fmt.Sprintf("model: host %d counted twice in key %v", hid, ks.key()))
	}
	ks.support++
}

// materialise makes the counts of key ks, which just reached MinCount hosts,
// from its hosts other than hid (whose ports the caller counts next, as for
// any key): from their counted services (a pending host's others are
// counted when it is flushed, as for any key of it).
func (w *writer) materialise(ks *keyStat, hid uint32) {
	m := w.m
	var buf [MaxPorts]uint16
	for _, o := range m.hostList(ks) {
		if o != hid {
			w.bumpPorts(ks, m.otherPorts(&m.hosts[o], ks.port, &buf), 1)
		}
	}
}

// dropCounts forgets the counts of key ks, fallen below MinCount hosts.
func (w *writer) dropCounts(ks *keyStat) {
	m := w.m
	if ks.coLen > 0 {
		m.co.releaseIn(w.co, ks.co, classOf(int(ks.coLen)))
	}
	ks.co, ks.coLen = 0, 0
}

// removeHost removes host hid (in it) from the host set of key ks.
func (w *writer) removeHost(ks *keyStat, hid uint32) {
	m := w.m
	switch n := int(ks.support); {
	case n <= listHosts:
		l := m.hostList(ks)
		i, found := slices.BinarySearch(l, hid)
		if !found {
			panic(fmt.Sprintf("model: host %d not in key %v", hid, ks.key()))
		}
		copy(l[i:], l[i+1:])
		switch off := ks.hosts[0]; {
		case n <= inlineHosts:
			ks.hosts[n-1] = 0
		case n-1 == inlineHosts:
			var h [inlineHosts]uint32
			copy(h[:], l)
			m.hl.releaseIn(w.hl, off, classOf(n))
			ks.hosts = h
		case classOf(n-1) < classOf(n):
			m.hl.releaseIn(w.hl, off+1<<classOf(n-1), classOf(n-1)) // the upper half
		}
	default:
		bi := ks.hosts[0]
		b := m.bitmaps[bi]
		if !b.CheckedRemove(hid) {
			panic(fmt.Sprintf("model: host %d not in key %v", hid, ks.key()))
		}
		if n-1 == listHosts {
			off := m.hl.allocIn(w.hl, classOf(n-1))
			copy(m.hl.block(off, n-1), b.ToArray())
			m.bitmaps[bi] = nil
			m.freeBitmaps = append(m.freeBitmaps, bi)
			ks.hosts[0] = off
		}
	}
	ks.support--
	if ks.support == MinCount-1 {
		w.dropCounts(ks)
	}
}

// bumpMany adds delta to count(key ks, p_a) for every p_a of ports (sorted),
// keeping the list sorted and free of zeros; a key of fewer than MinCount
// hosts keeps no counts.
func (w *writer) bumpMany(ks *keyStat, ports []uint16, delta int32) {
	if ks.support < MinCount {
		return
	}
	w.bumpPorts(ks, ports, delta)
}

// bumpPorts is bumpMany whatever the support.
func (w *writer) bumpPorts(ks *keyStat, ports []uint16, delta int32) {
	from := 0
	for _, p := range ports {
		from = w.bump(ks, p, delta, from)
	}
}

// bump adds delta to count(key ks, p_a), searching from index from on, and
// returns where the next larger port is to be searched from.
func (w *writer) bump(ks *keyStat, pa uint16, delta int32, from int) int {
	m := w.m
	n := int(ks.coLen)
	co := m.coList(ks)
	i := from + search(co[from:], pa)
	if i < n && co[i].Port == pa {
		c := int64(co[i].N) + int64(delta)
		switch {
		case c > 0:
			co[i].N = uint32(c)
			return i + 1
		case c == 0:
			copy(co[i:], co[i+1:])
			ks.coLen--
			switch oc, nc := classOf(n), classOf(n-1); {
			case n == 1:
				m.co.releaseIn(w.co, ks.co, 0)
				ks.co = 0
			case nc < oc:
				m.co.releaseIn(w.co, ks.co+1<<nc, nc) // the upper half
			}
			return i
		}
	}
	if delta < 0 {
		panic(fmt.Sprintf("model: count of key %v port %d would go negative", ks.key(), pa))
	}
	if n == 1<<16-1 {
		panic(fmt.Sprintf("model: key %v counts every port", ks.key()))
	}
	pc := PortCount{pa, uint32(delta)}
	switch {
	case n == 0:
		ks.co = m.co.allocIn(w.co, 0)
		*m.co.at(ks.co) = pc
	case n == 1<<classOf(n): // full: move to a block twice the size
		off := m.co.allocIn(w.co, classOf(n+1))
		dst, src := m.co.block(off, n+1), m.co.block(ks.co, n)
		copy(dst, src[:i])
		dst[i] = pc
		copy(dst[i+1:], src[i:])
		m.co.releaseIn(w.co, ks.co, classOf(n))
		ks.co = off
	default:
		b := m.co.block(ks.co, n+1)
		copy(b[i+1:], b[i:n])
		b[i] = pc
	}
	ks.coLen++
	return i + 1
}

// countFromHosts makes the counts of key ks (which keeps none) from the
// counted services of all its hosts, in a dense array of ports: a key that
// reaches MinCount in a big batch may already have thousands of hosts.
func (w *writer) countFromHosts(ks *keyStat) {
	m := w.m
	if w.dense == nil {
		w.dense = make([]uint32, 1<<16)
	}
	w.ports = w.ports[:0]
	add := func(hid uint32) {
		h := &m.hosts[hid]
		for _, sv := range m.svcs.block(h.svcs, h.countedServices()) {
			if sv.port != ks.port {
				if w.dense[sv.port] == 0 {
					w.ports = append(w.ports, sv.port)
				}
				w.dense[sv.port]++
			}
		}
	}
	if ks.support <= listHosts {
		for _, hid := range m.hostList(ks) {
			add(hid)
		}
	} else {
		for it := w.bitmap(ks).Iterator(); it.HasNext(); {
			add(it.Next())
		}
	}
	slices.Sort(w.ports)
	n := len(w.ports)
	ks.co = m.co.allocIn(w.co, classOf(n))
	ks.coLen = uint16(n)
	co := m.co.block(ks.co, n)
	for i, p := range w.ports {
		co[i] = PortCount{p, w.dense[p]}
		w.dense[p] = 0
	}
}

// count counts occs, occurrences of a batch sorted by slot (of keys no
// other writer has): adds every occurrence's host to its key, and the
// host's other ports to the key's counts, walking them in groups whose
// loads are issued together; then makes the counts of the keys that
// reached MinCount, from all their hosts.
func (w *writer) count(b *batch, occs []occ) {
	m := w.m
	if n := (int(m.nkeys) + 63) / 64; len(w.isCross) < n {
		w.isCross = make([]uint64, n+n/4)
	}
	w.crossed = w.crossed[:0]
	const group = 32
	var kid [group]uint32
	var others [MaxPorts]uint16
	for len(occs) > 0 {
		g := occs[:min(len(occs), group)]
		occs = occs[len(g):]
		for j := range g {
			kid[j] = g[j].ref
		}
		w.touch(kid[:len(g)])
		for j := range g {
			o := &g[j]
			k := kid[j]
			s := m.keys.at(k)
			ph := &b.hosts[o.ph]
			w.addHostSet(s, ph.hid)
			switch {
			case s.support == MinCount:
				w.crossed = append(w.crossed, k)
				w.isCross[k/64] |= 1 << (k % 64)
			case s.support > MinCount && w.isCross[k/64]&(1<<(k%64)) == 0:
				w.bumpPorts(s, allBut(ph.all[:ph.n], o.port, &others), 1)
			}
		}
	}
	for _, k := range w.crossed {
		w.isCross[k/64] &^= 1 << (k % 64)
		w.countFromHosts(m.keys.at(k))
	}
}

// newKey is a key made by a writer in keysParallel, and its slot.
type newKey struct {
	feat features.ID
	port uint16
	slot uint32
}

// findKeys sets the key of each of occs to its index, or to parBit | its
// index in w.newKeys if made now, looking it up from its home slot in
// slots lo..hi-1 only (its part's: no other goroutine writes them) and
// putting a new one in the first empty slot there. An occurrence whose
// probe would go past hi is left for later, alone.
func (w *writer) findKeys(occs []occ, lo, hi uint64) {
	m := w.m
	w.newKeys, w.later = w.newKeys[:0], w.later[:0]
	if len(occs) >= parBit {
		panic("model: batch too big")
	}
	for j := range occs {
		o := &occs[j]
		x := keyHash(o.feat, o.port)
		tag := x & tagMask
		i := x >> m.slotShift
		if i < lo {
			panic("model: occurrence out of its part")
		}
	probe:
		for ; ; i++ {
			if i >= hi {
				o.ref = noKey
				w.later = append(w.later, j)
				break
			}
			s := m.slots[i]
			switch {
			case s == 0:
				o.ref = parBit | uint32(len(w.newKeys))
				m.slots[i] = tag | uint64(o.ref)
				w.newKeys = append(w.newKeys, newKey{feat: o.feat, port: o.port, slot: uint32(i)})
				break probe
			case s&tagMask != tag:
			case uint32(s)&parBit != 0:
				if nk := &w.newKeys[uint32(s)&^parBit]; nk.feat == o.feat && nk.port == o.port {
					o.ref = uint32(s)
					break probe
				}
			default:
				k := uint32(s) - 1
				if ks := m.keys.at(k); ks.feat == o.feat && ks.port == o.port {
					o.ref = k
					break probe
				}
			}
		}
	}
}

// placeKeys writes the keys w made, indexes from base on, into the key
// arena, their slots and the occurrences of occs.
func (w *writer) placeKeys(b *batch, occs []occ, base uint32) {
	m := w.m
	for j, nk := range w.newKeys {
		k := base + uint32(j)
		*m.keys.at(k) = keyStat{feat: nk.feat, port: nk.port}
		m.slots[nk.slot] = m.slots[nk.slot]&tagMask | uint64(k+1)
	}
	for j := range occs {
		o := &occs[j]
		switch {
		case o.ref == noKey:
			continue
		case o.ref&parBit != 0:
			o.ref = base + o.ref&^parBit
		}
		b.keyOut[o.idx] = o.ref
	}
}
