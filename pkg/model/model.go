// Package model keeps the co-occurrence counts of GPS Phase 1 and answers
// rule queries on them, incrementally.
//
// For every key (p_b, f), a port and a feature of the service on it, the model
// holds the set of the hosts whose service on p_b has f: its cardinality is
// support(p_b, f). For every port p_a it holds the roaring bitmap of hosts
// with a service on p_a, so count(p_b, f, p_a) is the cardinality of the
// intersection of the two. Because a rule query must be cheap, those
// intersection counts are also kept materialised per key (a short list of
// (p_a, count) sorted by port) and updated with every service, and so is the
// support: Verify checks that they agree with the sets. Only keys with
// MinCount hosts or more keep counts: a key of fewer hosts can make no rule
// (a count is at most the support), and most keys, the crossed features of
// rare banners, have one or two hosts. Its counts are made from its hosts
// when it reaches MinCount, and dropped when it falls below.
//
// A key's host set is a roaring bitmap once it holds more than inlineHosts
// hosts; below that the few host ids sit inline in the key (most keys, the
// crossed features of rare banners, have one or two hosts, and a bitmap costs
// some 200 bytes and six allocations).
//
// Only hosts with MinPorts..MaxPorts distinct ports are counted (GPS step 1).
// A host's first service waits until a second arrives; a host that grows past
// MaxPorts is retracted from every count, its services keeping their
// features. The counts after any order of arrival therefore equal those of
// one batch build.
//
// The model counts live services only: Remove retracts a service that is
// gone (all its rows), RemoveHost a host gone or moved (remove.go), and the
// counts, Rows and Predict then equal those of a batch build of the
// services left. A Remove undoes what counting the service did, one key at
// a time (some 3-4 times an Add's cost a service, with no batching); a host
// that falls under MinPorts leaves every count, a pseudo host that falls
// back to MaxPorts is counted again from the features it kept, and a host
// with no service left frees its id. Keys and dictionary strings stay (a
// key of no host reads as one never made): with churn, they are what grows.
//
// Layout, for speed and memory: keys are found through an open-addressing
// table of their indexes; keys, count lists, the services of hosts and their
// key lists live in pointer-free arenas (arena.go), so an Add allocates
// nothing in the common case and the garbage collector has little to scan.
//
// An added row's features are computed behind, with those of thousands of
// other rows at once on every core (stage.go). Counting is write-behind
// too: the new services of up to maxPending hosts wait with their
// features, and are counted in one batch (flush.go) before any read (or
// Sync), or when one more host would pass the bound. No read can tell
// (every read sees the counts of every Add before it), but a host's
// services that arrive between two reads are counted together, and a host
// that grows past MaxPorts meanwhile is never counted. A big batch is
// counted by one goroutine a core (GOMAXPROCS, at most maxWorkers), each
// the keys whose home slot falls in its range of the key table: no two
// change one key, and each allocates from its own shards of the arenas
// (writer.go). The counts are the same whatever the number of goroutines.
//
// A Model is not safe for concurrent use by writers; reads (queries,
// WriteTo) may run concurrently with each other while nothing writes.
//
// WriteTo and ReadFrom save and restore the whole state (snapshot.go).
package model

import (
	"fmt"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/gpsscan/gps/pkg/features"
	"github.com/gpsscan/gps/pkg/row"
)

// GPS's port-count filter (GPS.md Phase 1 step 1).
const (
	MinPorts = 2
	MaxPorts = 10
	// MinCount: rules with count <= 2 are dropped (step 3).
	MinCount = 3
)

// A key holds up to inlineHosts hosts inline, up to listHosts in a sorted
// list in Model.hl, and more in a roaring bitmap.
const (
	inlineHosts = 3
	listHosts   = 64
)

// tagMask is the part of a slot that holds its key's tag (the high half of
// its hash); the low half holds key index + 1.
const tagMask = 0xffffffff00000000

// maxKeys bounds the keys: a slot holds key index + 1 below parBit.
const maxKeys = parBit - 1

// Key is an antecedent: a port and a feature of the service on it.
type Key struct {
	Port uint16
	Feat features.ID
}

// PortCount is how many counted hosts with a key also have a service on Port.
type PortCount struct {
	Port uint16
	N    uint32
}

type keyStat struct {
	feat    features.ID
	port    uint16
	coLen   uint16 // entries of the count list: at most 65535 other ports
	support uint32 // counted hosts whose service on port has feat
	co      uint32 // offset of the count list in Model.co (sorted by port, every N > 0)
	// support <= inlineHosts: the hosts, sorted; <= listHosts: hosts[0] is
	// the offset of the sorted list in Model.hl; more: hosts[0] indexes
	// Model.bitmaps.
	hosts [inlineHosts]uint32
}

type hostState uint8

const (
	stateWaiting hostState = iota // fewer than MinPorts ports: not counted yet
	stateCounted                  // MinPorts..MaxPorts ports: in every count
	statePseudo                   // more than MaxPorts: in no count
)

// service is a port of a host. While it is not counted (its host waits, is
// a pseudo host, or it is pending), off and n locate its features (sorted,
// distinct) in Model.feats; once counted, its key indexes in Model.ids.
type service struct {
	port uint16
	n    uint32
	off  uint32
}

type host struct {
	addr     uint32
	state    hostState
	pending  bool   // in Model.pending: services from pendFrom on are not counted yet
	staged   uint16 // rows of it in the stage (they address its services by index)
	n        uint32 // services (0: a free host id, in Model.free)
	svcs     uint32 // offset in Model.svcs
	pendFrom uint32 // while pending: its first service not counted yet
}

// Model is the incremental GPS co-occurrence model.
type Model struct {
	dict *features.Dict

	// slots is the open-addressing table of keys: a slot holds a hash tag
	// in its high half and key index + 1 in its low half; 0 is empty.
	slots     []uint64
	slotShift uint8
	nkeys     uint32
	keys      arena[keyStat] // one element per key, in order of creation

	co    arena[PortCount]
	ids   arena[uint32]
	feats arena[features.ID]
	svcs  arena[service]

	hl          arena[uint32]     // host sets of keys with support in (inlineHosts, listHosts]
	bitmaps     []*roaring.Bitmap // host sets of keys with support > listHosts
	freeBitmaps []uint32

	hostIdx   map[uint32]uint32
	hosts     []host
	free      *roaring.Bitmap // ids of hosts with no service left, reused lowest first
	pending   []uint32        // hosts with services not counted yet, in order of arrival
	window    int             // most hosts pending: maxPending (less in tests)
	batchOccs int             // most occurrences counted in a batch: maxBatchOccs (less in tests)
	dirtyW    bool            // the writer's view of dirty
	dirty     atomic.Bool
	mu        sync.Mutex
	portHosts []*roaring.Bitmap // by port; nil until a host is counted
	services  int
	version   uint64
	stage     stage // rows whose features are not computed yet
	batch     batch
	w         writer   // the changes made one by one
	par       []writer // the goroutines of a parallel flush
	coShards  []shard  // their shards of co and hl
	hlShards  []shard
	parMin    int // fewest occurrences a batch counts in parallel: minParOccs (less in tests)
	workers   int // most goroutines of a parallel flush: GOMAXPROCS, at most maxWorkers
	parRuns   int // batches counted in parallel, and in how many parts in all
	parParts  int
	parLater  int // occurrences whose key was found alone, after the parts
}

// New returns an empty model.
func New() *Model {
	m := &Model{
		dict:      features.NewDict(),
		hostIdx:   make(map[uint32]uint32),
		free:      roaring.New(),
		window:    maxPending,
		batchOccs: maxBatchOccs,
		parMin:    minParOccs,
		workers:   min(runtime.GOMAXPROCS(0), maxWorkers),
	}
	m.w = writer{m: m, co: &m.co.main, hl: &m.hl.main}
	m.initSlots(1 << 10)
	return m
}

// Dict is the model's feature dictionary (for rendering and parsing
// features). It holds the data strings of every row added before the call:
// like every read, it first counts what is behind, and that interns the
// strings of the rows added since (stage.go). So get it again after Adds
// rather than keep it across them: a kept one lacks the new strings, and
// is written to while another reader calls Dict.
func (m *Model) Dict() *features.Dict {
	m.sync()
	return m.dict
}

// Version counts the changes applied to the model.
func (m *Model) Version() uint64 { return m.version }

// Add adds one service (or merges a duplicate row of an (ip, port) already
// seen into it) and updates every count it affects. It reports whether the
// (ip, port) was new.
func (m *Model) Add(s *row.Service) bool {
	// Its features are staged (stage.go). A pseudo host's are kept too,
	// though they change no count: Remove may take the host back under
	// MaxPorts, and it then counts as in a batch build.
	return m.add(m.hostOf(s.Addr), uint16(s.Port), nil, s)
}

// AddFeatures is Add with the features already computed (from this model's
// Dict).
func (m *Model) AddFeatures(addr uint32, port uint16, feats []features.ID) bool {
	if !sortedDistinct(feats) {
		feats = slices.Compact(slices.Sorted(slices.Values(feats)))
	}
	return m.add(m.hostOf(addr), port, feats, nil)
}

// hostOf finds or makes the id of the host at addr: a new host takes the
// lowest free id, if any (one whose services were all removed), so that the
// ids, and the snapshot that holds them, follow from the hosts alone.
func (m *Model) hostOf(addr uint32) uint32 {
	hid, ok := m.hostIdx[addr]
	if ok {
		return hid
	}
	if !m.free.IsEmpty() {
		hid = m.free.Minimum()
		m.free.Remove(hid)
		m.hosts[hid] = host{addr: addr}
	} else {
		hid = uint32(len(m.hosts))
		m.hosts = append(m.hosts, host{addr: addr})
	}
	m.hostIdx[addr] = hid
	return hid
}

// add adds service port of host hid with its features (sorted, distinct),
// or with row s, whose features are then staged.
func (m *Model) add(hid uint32, port uint16, feats []features.ID, s *row.Service) bool {
	m.version++
	h := &m.hosts[hid]
	if !h.pending && h.state != statePseudo {
		if len(m.pending) >= m.window {
			m.flush()
		}
		h.pending, h.pendFrom = true, 0
		if h.state == stateCounted {
			h.pendFrom = h.n
		}
		m.pending = append(m.pending, hid)
	}
	for i, sv := range m.svcs.block(h.svcs, int(h.n)) {
		if sv.port == port {
			if s != nil {
				m.stageRow(hid, i, s)
			} else {
				m.merge(hid, i, feats)
			}
			return false
		}
	}
	m.services++
	h.svcs = m.svcs.resize(h.svcs, int(h.n), int(h.n)+1)
	*m.svcs.at(h.svcs + h.n) = service{port: port}
	h.n++
	n := int(h.n)
	if s != nil {
		m.stageRow(hid, n-1, s)
	} else {
		m.storeFeats(hid, n-1, feats)
	}
	switch {
	case h.state == statePseudo:
	case n <= MaxPorts:
		if n >= MinPorts {
			h.state = stateCounted
			m.markDirty()
		}
	default:
		// Past MaxPorts: out of every count. Only the part counted before
		// this host became pending needs retracting; its services keep
		// their features, for a Remove that takes it back under MaxPorts.
		m.retract(hid, int(h.pendFrom))
		h.state = statePseudo
		h.pending, h.pendFrom = false, 0 // flush passes it over
	}
	return true
}

// maxPending bounds the hosts waiting to be counted, and so the work of
// the flush a read may have to do first.
const maxPending = 1 << 16

// Counting is write-behind: the services a host gets while it is pending
// (from pendFrom on) hold their features, and flush counts them, all at
// once, when maxPending hosts are pending or before any read. A host's
// services that arrive between two reads are thus counted together, which
// costs far less than one at a time when results of many hosts interleave
// (each new service of a host updates the keys of all its earlier ones),
// and a host that grows past MaxPorts while pending (a seed read host by
// host) is never counted and never retracted. Reads call sync, which
// flushes under a lock, so that concurrent readers stay safe.
func (m *Model) markDirty() {
	if !m.dirtyW {
		m.dirtyW = true
		m.dirty.Store(true)
	}
}

func (m *Model) clean() {
	if m.dirtyW {
		m.dirtyW = false
		m.dirty.Store(false)
	}
}

// Sync counts what is still behind now (any read does it first): a service
// calls it when idle, so that its next read does not wait for it.
func (m *Model) Sync() { m.sync() }

// sync brings every count up to date before a read.
func (m *Model) sync() {
	if m.dirty.Load() {
		m.mu.Lock()
		if m.dirty.Load() {
			m.flush()
		}
		m.mu.Unlock()
	}
}

func sortPorts(p []uint16) {
	for i := 1; i < len(p); i++ {
		for j := i; j > 0 && p[j] < p[j-1]; j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
}

func sortedDistinct(f []features.ID) bool {
	for i := 1; i < len(f); i++ {
		if f[i] <= f[i-1] {
			return false
		}
	}
	return true
}

// storeFeats keeps the features of an uncounted service i.
func (m *Model) storeFeats(hid uint32, i int, feats []features.ID) {
	sv := m.svcs.at(m.hosts[hid].svcs + uint32(i))
	if len(feats) == 0 {
		sv.n, sv.off = 0, 0
		return
	}
	off := m.feats.alloc(classOf(len(feats)))
	copy(m.feats.block(off, len(feats)), feats)
	sv.n, sv.off = uint32(len(feats)), off
}

func (m *Model) releaseFeats(sv *service) {
	if sv.n > 0 {
		m.feats.release(sv.off, classOf(int(sv.n)))
	}
	sv.n, sv.off = 0, 0
}

// counted reports whether service i of host hid is in the counts.
func (m *Model) counted(hid uint32, i int) bool { return i < m.hosts[hid].countedServices() }

// countedServices is how many of the host's services are in the counts:
// its first ones, all of a counted host's but those pending.
func (h *host) countedServices() int {
	switch {
	case h.state != stateCounted:
		return 0
	case h.pending:
		return int(h.pendFrom)
	}
	return int(h.n)
}

// otherPorts fills buf with the ports of host h's counted services but
// port p, sorted, and returns them.
func (m *Model) otherPorts(h *host, p uint16, buf *[MaxPorts]uint16) []uint16 {
	n := 0
	for _, sv := range m.svcs.block(h.svcs, h.countedServices()) {
		if sv.port != p {
			buf[n] = sv.port
			n++
		}
	}
	sortPorts(buf[:n])
	return buf[:n]
}

// merge unions a duplicate row's features into service i of host hid.
func (m *Model) merge(hid uint32, i int, feats []features.ID) {
	h := &m.hosts[hid]
	switch {
	case !m.counted(hid, i):
		sv := m.svcs.at(h.svcs + uint32(i))
		old := m.feats.block(sv.off, int(sv.n))
		u := union(old, feats)
		if len(u) == len(old) {
			return
		}
		m.releaseFeats(sv)
		m.storeFeats(hid, i, u)
	default:
		// The host's counted services; the pending ones get this one's
		// port when they are counted.
		port := m.svcs.at(h.svcs + uint32(i)).port
		var buf [MaxPorts]uint16
		others := m.otherPorts(h, port, &buf)
		for _, f := range feats {
			k := m.key(port, f)
			sv := m.svcs.at(h.svcs + uint32(i))
			if slices.Contains(m.ids.block(sv.off, int(sv.n)), k) {
				continue
			}
			ks := m.keys.at(k)
			m.w.addHost(ks, hid)
			m.w.bumpMany(ks, others, 1)
			sv.off = m.ids.resize(sv.off, int(sv.n), int(sv.n)+1)
			sv.n++
			m.ids.block(sv.off, int(sv.n))[sv.n-1] = k
		}
	}
}

// retract takes the first c services of host hid, the counted ones, out of
// every count; they keep their features, as services not counted yet.
func (m *Model) retract(hid uint32, c int) {
	if c == 0 {
		return
	}
	h := &m.hosts[hid]
	svcs := m.svcs.block(h.svcs, c)
	var all [MaxPorts]uint16
	for i := range svcs {
		all[i] = svcs[i].port
	}
	sortPorts(all[:c])
	var others [MaxPorts]uint16
	for i := range svcs {
		sv := &svcs[i]
		o := allBut(all[:c], sv.port, &others)
		for _, k := range m.ids.block(sv.off, int(sv.n)) {
			ks := m.keys.at(k)
			m.w.removeHost(ks, hid)
			m.w.bumpMany(ks, o, -1)
		}
		m.unportHost(sv.port, hid)
		m.idsToFeats(sv)
	}
}

// allBut fills buf with ports but p (in their order) and returns them.
func allBut(ports []uint16, p uint16, buf *[MaxPorts]uint16) []uint16 {
	n := 0
	for _, q := range ports {
		if q != p {
			buf[n] = q
			n++
		}
	}
	return buf[:n]
}

// keyHash mixes a key into 64 bits: the top bits pick the slot, and the
// high 32 (tagMask) are the tag kept in it.
func keyHash(f features.ID, p uint16) uint64 {
	x := uint64(f) ^ uint64(p)*0x9e3779b97f4a7c15
	x ^= x >> 32
	x *= 0xd6e8feb86659fd93
	x ^= x >> 32
	x *= 0xd6e8feb86659fd93
	x ^= x >> 32
	return x
}

func (m *Model) initSlots(n int) {
	m.slots = make([]uint64, n)
	m.slotShift = uint8(64 - (bits.Len(uint(n)) - 1))
}

// lookup finds the index of key (p, f).
func (m *Model) lookup(p uint16, f features.ID) (uint32, bool) {
	x := keyHash(f, p)
	tag := x & tagMask
	mask := uint64(len(m.slots) - 1)
	for i := x >> m.slotShift; ; i = (i + 1) & mask {
		s := m.slots[i]
		if s == 0 {
			return 0, false
		}
		if s&tagMask == tag {
			k := uint32(s) - 1
			if ks := m.keys.at(k); ks.feat == f && ks.port == p {
				return k, true
			}
		}
	}
}

// key finds or makes the index of key (p, f).
func (m *Model) key(p uint16, f features.ID) uint32 {
	x := keyHash(f, p)
	tag := x & tagMask
	mask := uint64(len(m.slots) - 1)
	i := x >> m.slotShift
	for ; ; i = (i + 1) & mask {
		s := m.slots[i]
		if s == 0 {
			break
		}
		if s&tagMask == tag {
			k := uint32(s) - 1
			if ks := m.keys.at(k); ks.feat == f && ks.port == p {
				return k
			}
		}
	}
	k := m.nkeys
	if k == maxKeys {
		panic("model: too many keys")
	}
	m.nkeys++
	*m.keys.at(m.keys.alloc(0)) = keyStat{feat: f, port: p}
	m.slots[i] = tag | uint64(k+1)
	if uint64(m.nkeys)*4 > uint64(len(m.slots))*3 {
		m.rehash(2 * len(m.slots))
	}
	return k
}

// rehash moves the keys to a table of n slots. A key's home slot is the top
// bits of its hash, which its tag keeps (a table has fewer than 2^32
// slots), so the old slots are walked in order and the keys need not be
// read: the new table is written almost in order too.
func (m *Model) rehash(n int) {
	old := m.slots
	m.initSlots(n)
	mask := uint64(n - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := s >> m.slotShift
		for m.slots[i] != 0 {
			i = (i + 1) & mask
		}
		m.slots[i] = s
	}
}

func (m *Model) portBitmap(p uint16) *roaring.Bitmap {
	if m.portHosts == nil {
		m.portHosts = make([]*roaring.Bitmap, 1<<16)
	}
	b := m.portHosts[p]
	if b == nil {
		b = roaring.New()
		m.portHosts[p] = b
	}
	return b
}

// hostList is the sorted host set of key ks with support <= listHosts (do
// not keep it past a change).
func (m *Model) hostList(ks *keyStat) []uint32 {
	if ks.support <= inlineHosts {
		return ks.hosts[:ks.support]
	}
	return m.hl.block(ks.hosts[0], int(ks.support))
}

// insertSorted puts hid into l, sorted but for its free last element.
func insertSorted(l []uint32, hid uint32) bool {
	i := len(l) - 1
	for i > 0 && l[i-1] > hid {
		l[i] = l[i-1]
		i--
	}
	l[i] = hid
	return i == 0 || l[i-1] != hid
}

func (m *Model) newBitmap(b *roaring.Bitmap) uint32 {
	if n := len(m.freeBitmaps); n > 0 {
		i := m.freeBitmaps[n-1]
		m.freeBitmaps = m.freeBitmaps[:n-1]
		m.bitmaps[i] = b
		return i
	}
	m.bitmaps = append(m.bitmaps, b)
	return uint32(len(m.bitmaps) - 1)
}

func (ks *keyStat) key() Key { return Key{ks.port, ks.feat} }

// coList is the count list of a key (do not keep it past a change).
func (m *Model) coList(ks *keyStat) []PortCount {
	if ks.coLen == 0 {
		return nil
	}
	return m.co.block(ks.co, int(ks.coLen))
}

// search is where port p is or would go in a count list.
func search(co []PortCount, p uint16) int {
	if len(co) <= 16 {
		for i := range co {
			if co[i].Port >= p {
				return i
			}
		}
		return len(co)
	}
	lo, hi := 0, len(co)
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if co[h].Port < p {
			lo = h + 1
		} else {
			hi = h
		}
	}
	return lo
}

func union(a, b []features.ID) []features.ID {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// countOf is count(key ks, p_a) from the materialised list.
func (m *Model) countOf(ks *keyStat, pa uint16) uint32 {
	co := m.coList(ks)
	if i := search(co, pa); i < len(co) && co[i].Port == pa {
		return co[i].N
	}
	return 0
}

// Stats describes the model's size.
type Stats struct {
	Hosts, CountedHosts, PseudoHosts, Services, Keys, Features int
	Version                                                    uint64
}

// Stats counts what the model holds: its hosts with services, and its keys
// with hosts (what a batch build of its services holds too, whatever came
// and went); Features counts the dictionary's strings, which stay when their
// services go.
func (m *Model) Stats() Stats {
	m.sync()
	s := Stats{Hosts: len(m.hosts) - int(m.free.GetCardinality()), Services: m.services, Features: m.dict.Len(), Version: m.version}
	for k := range m.nkeys {
		if m.keys.at(k).support > 0 {
			s.Keys++
		}
	}
	for i := range m.hosts {
		switch m.hosts[i].state {
		case stateCounted:
			s.CountedHosts++
		case statePseudo:
			s.PseudoHosts++
		}
	}
	return s
}

// SizeInBytes estimates the memory of the model's structures (not counting
// the dictionary and the host address map).
func (m *Model) SizeInBytes() uint64 {
	n := uint64(len(m.slots))*8 + uint64(cap(m.hosts))*uint64(unsafe.Sizeof(host{}))
	n += m.keys.bytes(unsafe.Sizeof(keyStat{})) + m.co.bytes(unsafe.Sizeof(PortCount{}))
	n += m.ids.bytes(4) + m.hl.bytes(4) + m.feats.bytes(8) + m.svcs.bytes(unsafe.Sizeof(service{}))
	for _, b := range m.bitmaps {
		if b != nil {
			n += b.GetSizeInBytes() + 48
		}
	}
	for _, b := range m.portHosts {
		if b != nil {
			n += b.GetSizeInBytes()
		}
	}
	return n
}

// Each calls fn for every key with a non-zero support, in no fixed order, with
// its support and its co-occurrence counts (sorted by port; do not modify).
func (m *Model) Each(fn func(k Key, support uint32, co []PortCount)) {
	m.sync()
	var small []PortCount
	for k := uint32(0); k < m.nkeys; k++ {
		ks := m.keys.at(k)
		switch {
		case ks.support == 0:
		case ks.support < MinCount:
			small = m.smallCounts(ks, small[:0])
			fn(ks.key(), ks.support, small)
		default:
			fn(ks.key(), ks.support, m.coList(ks))
		}
	}
}

// smallCounts appends to out the counts of key ks of fewer than MinCount
// hosts, which keeps none, made from its hosts (sorted by port).
func (m *Model) smallCounts(ks *keyStat, out []PortCount) []PortCount {
	for _, hid := range m.hostList(ks) {
		h := &m.hosts[hid]
		for _, sv := range m.svcs.block(h.svcs, int(h.n)) {
			if sv.port == ks.port {
				continue
			}
			if i := search(out, sv.port); i < len(out) && out[i].Port == sv.port {
				out[i].N++
			} else {
				out = slices.Insert(out, i, PortCount{sv.port, 1})
			}
		}
	}
	return out
}

// Verify checks that every materialised count equals the cardinality of the
// intersection of its bitmaps, that every support equals the cardinality of
// its host set, and that no count is left for an empty key.
func (m *Model) Verify() error {
	m.sync()
	for k := uint32(0); k < m.nkeys; k++ {
		ks := m.keys.at(k)
		if err := m.verifyKey(ks); err != nil {
			return fmt.Errorf("verify model: %w", err)
		}
	}
	return nil
}

func (m *Model) verifyKey(ks *keyStat) error {
	co := m.coList(ks)
	if ks.support < MinCount && len(co) > 0 {
		return fmt.Errorf("key %v keeps counts with %d hosts", ks.key(), ks.support)
	}
	var bm *roaring.Bitmap
	var l []uint32
	if ks.support > listHosts {
		bm = m.bitmaps[ks.hosts[0]]
		if c := bm.GetCardinality(); c != uint64(ks.support) {
			return fmt.Errorf("key %v: support %d, bitmap holds %d", ks.key(), ks.support, c)
		}
	} else {
		l = m.hostList(ks)
		for i := 1; i < len(l); i++ {
			if l[i] <= l[i-1] {
				return fmt.Errorf("key %v: host list not sorted", ks.key())
			}
		}
	}
	for i, c := range co {
		if i > 0 && c.Port <= co[i-1].Port {
			return fmt.Errorf("key %v: counts not sorted by port", ks.key())
		}
		if c.Port == ks.port {
			return fmt.Errorf("key %v counts its own port", ks.key())
		}
		var pb *roaring.Bitmap
		if m.portHosts != nil {
			pb = m.portHosts[c.Port]
		}
		if pb == nil {
			return fmt.Errorf("key %v counts port %d with no hosts", ks.key(), c.Port)
		}
		var want uint64
		if bm != nil {
			want = bm.AndCardinality(pb)
		} else {
			for _, h := range l {
				if pb.Contains(h) {
					want++
				}
			}
		}
		if uint64(c.N) != want {
			return fmt.Errorf("key %v port %d: count %d, bitmaps say %d", ks.key(), c.Port, c.N, want)
		}
	}
	return nil
}
