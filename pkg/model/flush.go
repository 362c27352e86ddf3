package model

import (
	"iter"
	"slices"
	"sync"

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
//
// That also lets a big batch run on every core: the sorted occurrences are
// cut at boundaries of the sort's digits into one part a goroutine, and so
// the key table into ranges of slots, one a part. A part's keys have their
// home slot in its range and no other's; its goroutine finds and makes
// them there (keysParallel) and then counts them (countParallel), while
// the others do the same with theirs.

// occ is one (port, feature) occurrence of a new service in a batch.
type occ struct {
	feat features.ID
	// ref is the key's home slot until the keys are found (sortBySlot,
	// partition), and the key's index after: one field for both keeps an
	// occurrence at 24 bytes, and the sort, bound by memory, moves less.
	ref  uint32
	idx  uint32 // the occurrence's index, in order of the pending services
	ph   uint32 // index of its host in batch.hosts
	port uint16
}

// pendHost is a pending host in a batch: its ports, sorted, and the ports
// of its services being counted now (also sorted).
type pendHost struct {
	hid          uint32
	from         uint32 // its first service not counted yet
	occ0         uint32 // index of its first occurrence
	n, nfresh    uint8
	all, freshPs [MaxPorts]uint16
}

// batch is the scratch space of flush, kept between flushes.
type batch struct {
	hosts  []pendHost
	occs   []occ
	tmp    []occ
	keyOut []uint32       // key of occurrence idx
	cnt    [][1 << 12]int // counts of digits of sortBySlot, one array a goroutine
}

// maxBatchOccs bounds the occurrences of a batch, and so its scratch
// space (some 50 bytes an occurrence): more pending hosts are counted in
// several batches.
const maxBatchOccs = 1 << 20

// A batch of minParOccs occurrences or more is counted by up to maxWorkers
// goroutines, each the keys of its part of the key table (so that no two
// change one key): below, starting them costs more than they save.
const (
	minParOccs = 1 << 15
	maxWorkers = 8
)

// flush counts the pending hosts' uncounted services.
func (m *Model) flush() {
	// Concurrent readers wait in sync until the counts are complete.
	defer m.clean()
	m.applyStage()
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
		ph := pendHost{hid: hid, from: h.pendFrom, n: uint8(h.n), nfresh: uint8(h.n - h.pendFrom), occ0: uint32(total)}
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
			m.w.touch(ids)
			for _, k := range ids {
				m.w.bumpMany(m.keys.at(k), ph.freshPs[:ph.nfresh], 1)
			}
		}
	}

	// A big batch runs on every core, a small one on this goroutine.
	workers := 1
	if m.workers > 1 && total >= m.parMin {
		workers = m.workers
	}

	// The new services' occurrences (a part of the hosts a goroutine), with
	// room in the key table for every one of them to be a new key. Without
	// it, a batch that makes many keys (the first ones of a model) would
	// make them region by region of a table still far too small for them
	// all: each region overflows into the next, and linear probing walks
	// ever longer runs (20 times slower on a 100K-host seed). The bound on
	// a batch's occurrences bounds what this costs.
	b.occs = slices.Grow(b.occs[:0], total)[:total]
	parallel(workers, func(w int) {
		for i := range partOf(len(b.hosts), w, workers) {
			ph := &b.hosts[i]
			next := ph.occ0
			for _, sv := range m.svcs.block(m.hosts[ph.hid].svcs+ph.from, int(ph.nfresh)) {
				for _, f := range m.feats.block(sv.off, int(sv.n)) {
					b.occs[next] = occ{feat: f, idx: next, ph: uint32(i), port: sv.port}
					next++
				}
			}
		}
	})
	if need := uint64(m.nkeys) + uint64(len(b.occs)); need*4 > uint64(len(m.slots))*3 {
		n := len(m.slots)
		for uint64(n)*3 < need*4 {
			n *= 2
		}
		m.rehash(n)
	}
	shift := m.sortBySlot(b, workers)

	b.keyOut = slices.Grow(b.keyOut[:0], len(b.occs))[:len(b.occs)]
	if workers == 1 {
		for i := range b.occs {
			o := &b.occs[i]
			o.ref = m.key(o.port, o.feat)
			b.keyOut[o.idx] = o.ref
		}
		m.w.count(b, b.occs)
	} else {
		parts := m.partition(b, workers, shift)
		m.keysParallel(b, parts, shift)
		m.countParallel(b, parts)
	}

	// The new services keep their keys instead of their features.
	next := 0
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

// sortBySlot sets the home slot of every occurrence and orders b.occs by
// its top bits (digit of them, from the returned shift on) in one pass of
// a counting sort, stable, with n goroutines each a part of the occurrences:
// a key's occurrences then fall in a run of a few thousand, whose keys stay
// in cache while the run is counted, and the key table is walked in order.
// (A full sort costs more than it saves.)
func (m *Model) sortBySlot(b *batch, n int) (shift int) {
	const digit = 12
	shift = max(64-int(m.slotShift)-digit, 0)
	if len(b.cnt) < n {
		b.cnt = make([][1 << digit]int, n)
	}
	parallel(n, func(w int) {
		c := &b.cnt[w]
		*c = [1 << digit]int{}
		for i := range partOf(len(b.occs), w, n) {
			o := &b.occs[i]
			o.ref = uint32(keyHash(o.feat, o.port) >> m.slotShift)
			c[o.ref>>shift]++
		}
	})
	if n == 1 && len(b.occs) < 1<<digit {
		return shift // a small batch is in cache anyway
	}
	sum := 0
	for d := range 1 << digit {
		for w := range n {
			c := b.cnt[w][d]
			b.cnt[w][d] = sum
			sum += c
		}
	}
	b.tmp = slices.Grow(b.tmp[:0], len(b.occs))[:len(b.occs)]
	parallel(n, func(w int) {
		c := &b.cnt[w]
		for i := range partOf(len(b.occs), w, n) {
			d := b.occs[i].ref >> shift
			b.tmp[c[d]] = b.occs[i]
			c[d]++
		}
	})
	b.occs, b.tmp = b.tmp, b.occs
	return shift
}

// noKey marks an occurrence whose key is not made yet.
const noKey = ^uint32(0)

// partOf is part w of n near-equal parts of 0..l-1.
func partOf(l, w, n int) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := l * w / n; i < l*(w+1)/n; i++ {
			if !yield(i) {
				return
			}
		}
	}
}

// parallel calls fn(0) ... fn(n-1) on n goroutines (this one among them)
// and waits for them.
func parallel(n int, fn func(w int)) {
	var wg sync.WaitGroup
	for w := range n - 1 {
		wg.Go(func() { fn(w) })
	}
	fn(n - 1)
	wg.Wait()
}

// partition cuts b.occs (sorted by slot, in digits of the given shift)
// into up to n parts of whole digits, for n goroutines: a key's occurrences
// all have its home slot, so no two parts share a key, and each part's keys
// have their home in a range of slots of its own.
func (m *Model) partition(b *batch, n int, shift int) [][]occ {
	if len(m.par) < n {
		m.par = make([]writer, n)
		m.coShards = make([]shard, n)
		m.hlShards = make([]shard, n)
		for i := range m.par {
			m.par[i] = writer{m: m, co: &m.coShards[i], hl: &m.hlShards[i], par: true}
		}
	}
	var parts [][]occ
	rest := b.occs
	for len(parts) < n-1 {
		cut := len(rest) / (n - len(parts))
		if cut == 0 {
			break
		}
		for cut < len(rest) && rest[cut].ref>>shift == rest[cut-1].ref>>shift {
			cut++ // to the end of the digit
		}
		parts = append(parts, rest[:cut])
		rest = rest[cut:]
	}
	if len(rest) > 0 {
		parts = append(parts, rest)
	}
	return parts
}

// keysParallel finds or makes the keys of the occurrences of parts, one
// goroutine a part. Each looks its keys up in its own range of slots (from
// the home slot of its first digit to that of the digit after its last)
// and puts its new keys in empty slots there, marked parBit | their index
// in its writer's newKeys. Then the new keys get their indexes, in order
// of parts, and each goroutine writes them into its slots and occurrences.
// A key whose probe would leave its part's range (a few, at the ends) is
// looked up or made last, alone.
func (m *Model) keysParallel(b *batch, parts [][]occ, shift int) {
	bound := make([]uint64, len(parts)+1) // part i's slots: bound[i] to bound[i+1]-1
	for i, p := range parts {
		bound[i] = uint64(p[0].ref>>shift) << shift
	}
	bound[len(parts)] = uint64(len(m.slots))
	parallel(len(parts), func(i int) {
		m.par[i].findKeys(parts[i], bound[i], bound[i+1])
	})
	base := make([]uint32, len(parts)+1)
	base[0] = m.nkeys
	for i := range parts {
		n := uint32(len(m.par[i].newKeys))
		if uint64(base[i])+uint64(n) > maxKeys {
			panic("model: too many keys")
		}
		base[i+1] = base[i] + n
		for k := base[i]; k < base[i+1]; k++ {
			if m.keys.alloc(0) != k {
				panic("model: key arena out of step") // key k is at offset k
			}
		}
	}
	m.nkeys = base[len(parts)]
	parallel(len(parts), func(i int) {
		m.par[i].placeKeys(b, parts[i], base[i])
	})
	for i := range parts {
		w := &m.par[i]
		m.parLater += len(w.later)
		for _, j := range w.later {
			o := &parts[i][j]
			o.ref = m.key(o.port, o.feat)
			b.keyOut[o.idx] = o.ref
		}
	}
}

// countParallel counts the parts of b.occs, one goroutine a part (no two
// share a key). Each takes its blocks from shards of its own of the
// arenas it changes (co and hl), and the bitmaps it makes wait in it, until
// all are done and their blocks and bitmaps are joined into the model.
func (m *Model) countParallel(b *batch, parts [][]occ) {
	m.parRuns++
	m.parParts += len(parts)
	m.co.split(m.coShards[:len(parts)])
	m.hl.split(m.hlShards[:len(parts)])
	parallel(len(parts), func(i int) {
		m.par[i].count(b, parts[i])
	})
	m.co.join(m.coShards[:len(parts)])
	m.hl.join(m.hlShards[:len(parts)])
	for i := range parts {
		m.par[i].joinBitmaps()
	}
}
