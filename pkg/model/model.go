// Package model keeps the co-occurrence counts of GPS Phase 1 and answers
// rule queries on them, incrementally.
//
// For every key (p_b, f), a port and a feature of the service on it, the model
// holds a roaring bitmap of the hosts whose service on p_b has f: its
// cardinality is support(p_b, f). For every port p_a it holds the bitmap of
// hosts with a service on p_a, so count(p_b, f, p_a) is the cardinality of
// their intersection. Because a rule query must be cheap, those intersection
// counts are also kept materialised per key (a short list of (p_a, count)
// sorted by port) and updated with every service: Verify checks that the two
// agree.
//
// Only hosts with MinPorts..MaxPorts distinct ports are counted (GPS step 1).
// A host's first service waits until a second arrives; a host that grows past
// MaxPorts is retracted from every count. The counts after any order of
// arrival therefore equal those of one batch build.
//
// A Model is not safe for concurrent use by writers; reads (queries) may run
// concurrently with each other while nothing writes.
package model

import (
	"fmt"
	"slices"

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
	key   Key
	hosts *roaring.Bitmap // counted hosts whose service on key.Port has key.Feat
	co    []PortCount     // sorted by Port, every N > 0
}

type hostState uint8

const (
	stateWaiting hostState = iota // fewer than MinPorts ports: not counted yet
	stateCounted                  // MinPorts..MaxPorts ports: in every count
	statePseudo                   // more than MaxPorts: retracted for good
)

type service struct {
	port  uint16
	feats []features.ID // while the host is waiting: sorted, distinct
	keys  []uint32      // once counted: indexes into Model.keys
}

type host struct {
	addr  uint32
	state hostState
	svcs  []service
}

// Model is the incremental GPS co-occurrence model.
type Model struct {
	dict      *features.Dict
	keyIdx    map[Key]uint32
	keys      []keyStat
	hostIdx   map[uint32]uint32
	hosts     []host
	portHosts map[uint16]*roaring.Bitmap
	services  int
	version   uint64
	scratch   []features.ID
}

// New returns an empty model.
func New() *Model {
	return &Model{
		dict:      features.NewDict(),
		keyIdx:    make(map[Key]uint32),
		hostIdx:   make(map[uint32]uint32),
		portHosts: make(map[uint16]*roaring.Bitmap),
	}
}

// Dict is the model's feature dictionary (for rendering and parsing features).
func (m *Model) Dict() *features.Dict { return m.dict }

// Version counts the changes applied to the model.
func (m *Model) Version() uint64 { return m.version }

// Add adds one service (or merges a duplicate row of an (ip, port) already
// seen into it) and updates every count it affects. It reports whether the
// (ip, port) was new.
func (m *Model) Add(s *row.Service) bool {
	m.scratch = m.dict.Of(m.scratch[:0], s, true)
	return m.AddFeatures(s.Addr, uint16(s.Port), m.scratch)
}

// AddFeatures is Add with the features already computed (sorted, distinct,
// from this model's Dict).
func (m *Model) AddFeatures(addr uint32, port uint16, feats []features.ID) bool {
	m.version++
	hid, ok := m.hostIdx[addr]
	if !ok {
		hid = uint32(len(m.hosts))
		m.hostIdx[addr] = hid
		m.hosts = append(m.hosts, host{addr: addr})
	}
	h := &m.hosts[hid]
	for i := range h.svcs {
		if h.svcs[i].port == port {
			m.merge(hid, i, feats)
			return false
		}
	}
	m.services++
	h.svcs = append(h.svcs, service{port: port})
	n := len(h.svcs)
	if h.state == statePseudo {
		return true
	}
	h.svcs[n-1].feats = slices.Clone(feats)
	switch {
	case n == MinPorts:
		h.state = stateCounted
		for i := range h.svcs {
			m.count(hid, i)
		}
	case n > MinPorts && n <= MaxPorts:
		m.count(hid, n-1)
	case n > MaxPorts:
		m.retract(hid)
	}
	return true
}

// merge unions a duplicate row's features into service i of host hid.
func (m *Model) merge(hid uint32, i int, feats []features.ID) {
	h := &m.hosts[hid]
	sv := &h.svcs[i]
	switch h.state {
	case statePseudo:
	case stateWaiting:
		sv.feats = union(sv.feats, feats)
	case stateCounted:
		for _, f := range feats {
			if slices.ContainsFunc(sv.keys, func(k uint32) bool { return m.keys[k].key.Feat == f }) {
				continue
			}
			k := m.key(Key{sv.port, f})
			m.keys[k].hosts.Add(hid)
			for j := range h.svcs {
				if j != i {
					m.bump(k, h.svcs[j].port, 1)
				}
			}
			sv.keys = append(sv.keys, k)
		}
	}
}

// count brings service i of a counted host into every count: its keys, and
// the pairs it forms with the host's services already counted.
func (m *Model) count(hid uint32, i int) {
	h := &m.hosts[hid]
	sv := &h.svcs[i]
	sv.keys = make([]uint32, len(sv.feats))
	for j, f := range sv.feats {
		k := m.key(Key{sv.port, f})
		sv.keys[j] = k
		m.keys[k].hosts.Add(hid)
	}
	sv.feats = nil
	m.portBitmap(sv.port).Add(hid)
	for j := range h.svcs {
		o := &h.svcs[j]
		if j == i || o.keys == nil {
			continue
		}
		for _, k := range sv.keys {
			m.bump(k, o.port, 1)
		}
		for _, k := range o.keys {
			m.bump(k, sv.port, 1)
		}
	}
}

// retract takes a host that grew past MaxPorts out of every count, for good.
func (m *Model) retract(hid uint32) {
	h := &m.hosts[hid]
	for i := range h.svcs {
		sv := &h.svcs[i]
		if sv.keys == nil {
			continue
		}
		for _, k := range sv.keys {
			m.keys[k].hosts.Remove(hid)
			for j := range h.svcs {
				if j != i && h.svcs[j].keys != nil {
					m.bump(k, h.svcs[j].port, -1)
				}
			}
		}
		m.portHosts[sv.port].Remove(hid)
	}
	for i := range h.svcs {
		h.svcs[i].keys, h.svcs[i].feats = nil, nil
	}
	h.state = statePseudo
}

func (m *Model) key(k Key) uint32 {
	if i, ok := m.keyIdx[k]; ok {
		return i
	}
	i := uint32(len(m.keys))
	m.keyIdx[k] = i
	m.keys = append(m.keys, keyStat{key: k, hosts: roaring.New()})
	return i
}

func (m *Model) portBitmap(p uint16) *roaring.Bitmap {
	b := m.portHosts[p]
	if b == nil {
		b = roaring.New()
		m.portHosts[p] = b
	}
	return b
}

// bump adds delta to count(key k, p_a), keeping co sorted and free of zeros.
func (m *Model) bump(k uint32, pa uint16, delta int32) {
	co := m.keys[k].co
	i, found := slices.BinarySearchFunc(co, pa, func(c PortCount, p uint16) int { return int(c.Port) - int(p) })
	switch {
	case found:
		n := int64(co[i].N) + int64(delta)
		if n == 0 {
			m.keys[k].co = slices.Delete(co, i, i+1)
		} else {
			co[i].N = uint32(n)
		}
	case delta > 0:
		m.keys[k].co = slices.Insert(co, i, PortCount{pa, uint32(delta)})
	default:
		panic(fmt.Sprintf("model: count of key %d port %d would go negative", k, pa))
	}
}

func union(a, b []features.ID) []features.ID {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// countOf is count(key k, p_a) from the materialised list.
func (m *Model) countOf(k uint32, pa uint16) uint32 {
	co := m.keys[k].co
	i, found := slices.BinarySearchFunc(co, pa, func(c PortCount, p uint16) int { return int(c.Port) - int(p) })
	if !found {
		return 0
	}
	return co[i].N
}

func (m *Model) support(k uint32) uint32 { return uint32(m.keys[k].hosts.GetCardinality()) }

// Stats describes the model's size.
type Stats struct {
	Hosts, CountedHosts, PseudoHosts, Services, Keys, Features int
	Version                                                    uint64
}

// Stats counts what the model holds.
func (m *Model) Stats() Stats {
	s := Stats{Hosts: len(m.hosts), Services: m.services, Keys: len(m.keys), Features: m.dict.Len(), Version: m.version}
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

// SizeInBytes estimates the memory of the bitmaps and count lists.
func (m *Model) SizeInBytes() uint64 {
	var n uint64
	for i := range m.keys {
		n += m.keys[i].hosts.GetSizeInBytes() + uint64(cap(m.keys[i].co))*8 + 48
	}
	for _, b := range m.portHosts {
		n += b.GetSizeInBytes()
	}
	return n
}

// Each calls fn for every key with a non-zero support, in no fixed order, with
// its support and its co-occurrence counts (sorted by port; do not modify).
func (m *Model) Each(fn func(k Key, support uint32, co []PortCount)) {
	for i := range m.keys {
		if s := m.support(uint32(i)); s > 0 {
			fn(m.keys[i].key, s, m.keys[i].co)
		}
	}
}

// Verify checks that every materialised count equals the cardinality of the
// intersection of its bitmaps, and that no count is left for an empty key.
func (m *Model) Verify() error {
	for i := range m.keys {
		ks := &m.keys[i]
		if ks.hosts.IsEmpty() && len(ks.co) > 0 {
			return fmt.Errorf("verify model: key %v has counts but no hosts", ks.key)
		}
		for _, c := range ks.co {
			pb := m.portHosts[c.Port]
			if pb == nil {
				return fmt.Errorf("verify model: key %v counts port %d with no hosts", ks.key, c.Port)
			}
			if want := ks.hosts.AndCardinality(pb); uint64(c.N) != want {
				return fmt.Errorf("verify model: key %v port %d: count %d, bitmaps say %d", ks.key, c.Port, c.N, want)
			}
		}
	}
	return nil
}
