package model

import (
	"slices"

	"github.com/gpsscan/gps/pkg/features"
)

// The write-behind counting of the pending hosts runs as one batch. Their
// new services' (port, feature) occurrences are sorted by the slot of their
// key, so that the key table is walked in order and each key's host set and
// count list are loaded once for all the occurrences of the batch, not once
// each: a key of a common feature (L4, an AS, a /16, a popular banner line)
// gets many hosts in a batch, and one at a time those were cache misses.
//
// The counts after a batch are a function of the hosts' services alone
// (they are intersection cardinalities), so the order within it does not
// matter, but for one thing: a key that reaches MinCount hosts in the batch
// has its counts made from all its hosts once, at the end, instead of from
// each new host's ports (it kept no counts before).

// occ is one (port, feature) occurrence of a new service in a batch.
type occ struct {
	feat features.ID
	slot uint32 // the key's home slot
	idx  uint32 // the occurrence's index, in order of the pending services
	ph   uint32 // index of its host in batch.hosts
	port uint16
}

// pendHost is a pending host in a batch: its ports, sorted, and the ports
// of its services being counted now (also sorted).
type pendHost struct {
	hid          uint32
	from         uint32 // its first service not counted yet
	n, nfresh    uint8
	all, freshPs [MaxPorts]uint16
}

// batch is the scratch space of flush, kept between flushes.
type batch struct {
	hosts   []pendHost
	occs    []occ
	tmp     []occ
	keyOut  []uint32 // key of occurrence idx
	crossed []uint32 // keys that reached MinCount in the batch
	isCross []uint64 // bit set of crossed, by key
	dense   []uint32 // counts by port, zero between uses
	ports   []uint16 // the ports with a count in dense
}

// maxBatchOccs bounds the occurrences of a batch, and so its scratch
// space (some 50 bytes an occurrence): more pending hosts are counted in
// several batches.
const maxBatchOccs = 1 << 20

// flush counts the pending hosts' uncounted services.
func (m *Model) flush() {
	// Concurrent readers wait in sync until the counts are complete.
	defer m.clean()
	for pend := m.pending; len(pend) > 0; {
		pend = pend[m.flushBatch(pend):]
	}
	m.pending = m.pending[:0]
}

// flushBatch counts the uncounted services of the first pending hosts of
// hids, up to m.batchOccs occurrences, and returns how many it took. Hosts
// still pending after them count only up to their pendFrom meanwhile.
func (m *Model) flushBatch(hids []uint32) int {
	b := &m.batch
	b.hosts = b.hosts[:0]
	taken, total := 0, 0
	for ; taken < len(hids) && total < m.batchOccs; taken++ {
		hid := hids[taken]
		h := &m.hosts[hid]
		if !h.pending {
			continue // gone past MaxPorts meanwhile
		}
		h.pending = false
		if h.state != stateCounted || h.pendFrom >= h.n {
			continue
		}
		ph := pendHost{hid: hid, from: h.pendFrom, n: uint8(h.n), nfresh: uint8(h.n - h.pendFrom)}
		for i, sv := range m.svcs.block(h.svcs, int(h.n)) {
			ph.all[i] = sv.port
			if uint32(i) >= h.pendFrom {
				ph.freshPs[uint32(i)-h.pendFrom] = sv.port
				total += int(sv.n)
			}
		}
		sortPorts(ph.all[:ph.n])
		sortPorts(ph.freshPs[:ph.nfresh])
		b.hosts = append(b.hosts, ph)
	}
	if len(b.hosts) == 0 {
		return taken
	}

	// Old services' keys gain the new ports (their support does not change
	// in a batch, so a key of fewer than MinCount hosts keeps no counts).
	for i := range b.hosts {
		ph := &b.hosts[i]
		if ph.from == 0 {
			continue
		}
		h := &m.hosts[ph.hid]
		for _, sv := range m.svcs.block(h.svcs, int(ph.from)) {
			ids := m.ids.block(sv.off, int(sv.n))
			m.touch(ids)
			for _, k := range ids {
				m.bumpMany(m.keys.at(k), ph.freshPs[:ph.nfresh], 1)
			}
		}
	}

	// The new services' occurrences, with room in the key table for every
	// one of them to be a new key. Without it, a batch that makes many keys
	// (the first ones of a model) would make them region by region of a
	// table still far too small for them all: each region overflows into
	// the next, and linear probing walks ever longer runs (20 times slower
	// on a 100K-host seed). The bound on a batch's occurrences bounds what
	// this costs.
	b.occs = slices.Grow(b.occs[:0], total)[:total]
	next := 0
	for i := range b.hosts {
		ph := &b.hosts[i]
		for _, sv := range m.svcs.block(m.hosts[ph.hid].svcs+ph.from, int(ph.nfresh)) {
			for _, f := range m.feats.block(sv.off, int(sv.n)) {
				b.occs[next] = occ{feat: f, idx: uint32(next), ph: uint32(i), port: sv.port}
				next++
			}
		}
	}
	if need := uint64(m.nkeys) + uint64(len(b.occs)); need*4 > uint64(len(m.slots))*3 {
		n := len(m.slots)
		for uint64(n)*3 < need*4 {
			n *= 2
		}
		m.rehash(n)
	}
	for i := range b.occs {
		o := &b.occs[i]
		o.slot = uint32(keyHash(o.feat, o.port) >> m.slotShift)
	}
	b.sortBySlot(64 - int(m.slotShift))

	b.keyOut = slices.Grow(b.keyOut[:0], len(b.occs))[:len(b.occs)]
	b.crossed = b.crossed[:0]
	if n := (int(m.nkeys) + len(b.occs) + 63) / 64; len(b.isCross) < n {
		b.isCross = make([]uint64, n+n/4)
	}
	m.countOccs(b)

	// Keys that reached MinCount: their counts from all their hosts.
	for _, k := range b.crossed {
		b.isCross[k/64] &^= 1 << (k % 64)
		m.countFromHosts(m.keys.at(k), b)
	}

	// The new services keep their keys instead of their features.
	next = 0
	for i := range b.hosts {
		ph := &b.hosts[i]
		h := &m.hosts[ph.hid]
		for j := range int(ph.nfresh) {
			sv := m.svcs.at(h.svcs + ph.from + uint32(j))
			var off uint32
			if sv.n > 0 {
				off = m.ids.alloc(classOf(int(sv.n)))
				copy(m.ids.block(off, int(sv.n)), b.keyOut[next:next+int(sv.n)])
				m.feats.release(sv.off, classOf(int(sv.n)))
				next += int(sv.n)
			}
			sv.off = off
			m.portBitmap(sv.port).Add(ph.hid)
		}
	}
	if cap(b.occs) > 1<<16 && len(b.occs) < cap(b.occs)/8 {
		// A big batch is rare once a model is built: let its scratch go.
		b.occs, b.tmp, b.keyOut = nil, nil, nil
	}
	return taken
}

// countFromHosts makes the counts of key ks (which keeps none) from the
// counted services of all its hosts, in a dense array of ports: a key that
// reaches MinCount in a big batch may already have thousands of hosts.
func (m *Model) countFromHosts(ks *keyStat, b *batch) {
	if b.dense == nil {
		b.dense = make([]uint32, 1<<16)
	}
	b.ports = b.ports[:0]
	add := func(hid uint32) {
		h := &m.hosts[hid]
		for _, sv := range m.svcs.block(h.svcs, h.countedServices()) {
			if sv.port != ks.port {
				if b.dense[sv.port] == 0 {
					b.ports = append(b.ports, sv.port)
				}
				b.dense[sv.port]++
			}
		}
	}
	if ks.support <= listHosts {
		for _, hid := range m.hostList(ks) {
			add(hid)
		}
	} else {
		for it := m.bitmaps[ks.hosts[0]].Iterator(); it.HasNext(); {
			add(it.Next())
		}
	}
	slices.Sort(b.ports)
	n := len(b.ports)
	ks.co = m.co.alloc(classOf(n))
	ks.coLen = uint16(n)
	co := m.co.block(ks.co, n)
	for i, p := range b.ports {
		co[i] = PortCount{p, b.dense[p]}
		b.dense[p] = 0
	}
}

// countOccs adds every occurrence's host to its key, and the host's other
// ports to the key's counts, walking the occurrences (sorted by slot) in
// groups whose loads are issued together.
func (m *Model) countOccs(b *batch) {
	const group = 32
	var kid [group]uint32
	var others [MaxPorts]uint16
	for occs := b.occs; len(occs) > 0; {
		g := occs[:min(len(occs), group)]
		occs = occs[len(g):]
		for j := range g {
			kid[j] = m.key(g[j].port, g[j].feat)
			b.keyOut[g[j].idx] = kid[j]
		}
		m.touch(kid[:len(g)])
		for j := range g {
			o := &g[j]
			k := kid[j]
			s := m.keys.at(k)
			ph := &b.hosts[o.ph]
			m.addHostSet(s, ph.hid)
			switch {
			case s.support == MinCount:
				b.crossed = append(b.crossed, k)
				b.isCross[k/64] |= 1 << (k % 64)
			case s.support > MinCount && b.isCross[k/64]&(1<<(k%64)) == 0:
				m.bumpPorts(s, allBut(ph.all[:ph.n], o.port, &others), 1)
			}
		}
	}
}

// sortBySlot orders b.occs by the top bits of their slot, of the given
// number of bits, in one pass of a counting sort: a key's occurrences then
// fall in a run of a few thousand, whose keys stay in cache while the run
// is counted, and the key table is walked in order. (A full sort costs
// more than it saves.)
func (b *batch) sortBySlot(bits int) {
	const digit = 12
	if len(b.occs) < 1<<digit {
		return // a small batch is in cache anyway
	}
	shift := max(bits-digit, 0)
	b.tmp = slices.Grow(b.tmp[:0], len(b.occs))[:len(b.occs)]
	var cnt [1 << digit]int
	for i := range b.occs {
		cnt[b.occs[i].slot>>shift]++
	}
	sum := 0
	for i, c := range cnt {
		cnt[i] = sum
		sum += c
	}
	for i := range b.occs {
		d := b.occs[i].slot >> shift
		b.tmp[cnt[d]] = b.occs[i]
		cnt[d]++
	}
	b.occs, b.tmp = b.tmp, b.occs
}
