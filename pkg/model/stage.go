package model

import (
	"github.com/gpsscan/gps/pkg/features"
	"github.com/gpsscan/gps/pkg/row"
)

// The features of an added row are computed behind too: Add keeps a copy of
// the row, and its features are computed with those of up to maxStaged
// others at once, on every core (features.Dict.OfAll), before any flush or
// read, or when the stage is full. Computing them (the strings of a
// banner's lines built, hashed and looked up) was two thirds of an Add.
//
// A staged row is applied as the Add would have applied its features: kept
// as the features of a service not counted yet, or merged into a service's
// (a duplicate row). It addresses its service by index, which a Remove of
// one of the host's services shifts: Remove applies the stage first when
// the host has rows in it (host.staged).

// stagedRow is an added row whose features are not computed yet, with its
// own copies of what the caller's row points to (the caller may reuse it).
type stagedRow struct {
	svc    row.Service
	asn, w int64
	cert   string
	oids   [2]uint32 // its TLS OIDs: stage.oids[oids[0]:oids[1]]
	hid, i uint32    // its service: index i of host hid
}

type stage struct {
	rows []stagedRow
	oids []string
	svcs []*row.Service // scratch of applyStage
}

// maxStaged bounds the rows waiting for their features.
const maxStaged = 1 << 10

// stageRow keeps row s, for service i of host hid, until its features are
// computed.
func (m *Model) stageRow(hid uint32, i int, s *row.Service) {
	st := &m.stage
	r := stagedRow{svc: *s, hid: hid, i: uint32(i)}
	if s.ASN != nil {
		r.asn = *s.ASN
	}
	if s.Window != nil {
		r.w = *s.Window
	}
	if s.TLSCert != nil {
		r.cert = *s.TLSCert
	}
	r.svc.TLSOIDs = nil
	if len(s.TLSOIDs) > 0 {
		r.oids[0] = uint32(len(st.oids))
		st.oids = append(st.oids, s.TLSOIDs...)
		r.oids[1] = uint32(len(st.oids))
	}
	st.rows = append(st.rows, r)
	m.hosts[hid].staged++
	m.markDirty()
	if len(st.rows) >= maxStaged {
		m.applyStage()
	}
}

// services points the staged rows' pointers into the stage (nothing is
// appended to rows until they are applied) and appends the rows to svcs.
func services(svcs []*row.Service, rows []stagedRow, oids []string) []*row.Service {
	for j := range rows {
		r := &rows[j]
		if r.svc.ASN != nil {
			r.svc.ASN = &r.asn
		}
		if r.svc.Window != nil {
			r.svc.Window = &r.w
		}
		if r.svc.TLSCert != nil {
			r.svc.TLSCert = &r.cert
		}
		if r.oids[1] > r.oids[0] {
			r.svc.TLSOIDs = oids[r.oids[0]:r.oids[1]:r.oids[1]]
		}
		svcs = append(svcs, &r.svc)
	}
	return svcs
}

// applyStage computes the features of every staged row and applies them.
func (m *Model) applyStage() {
	st := &m.stage
	if len(st.rows) == 0 {
		return
	}
	st.svcs = services(st.svcs[:0], st.rows, st.oids)
	m.dict.OfAll(st.svcs, m.workers, func(j int, feats []features.ID) { m.applyRow(&st.rows[j], feats) })
	for j := range st.rows {
		m.hosts[st.rows[j].hid].staged = 0
	}
	// Drop the rows' strings, so that they can be collected.
	clear(st.rows)
	clear(st.oids)
	clear(st.svcs)
	st.rows, st.oids, st.svcs = st.rows[:0], st.oids[:0], st.svcs[:0]
}

// applyRow applies the features of a staged row. Every row's strings are
// interned, in the order of the Adds, so that the ids do not depend on when
// rows were applied.
func (m *Model) applyRow(r *stagedRow, feats []features.ID) {
	m.setFeats(r.hid, int(r.i), feats)
}

// setFeats gives service i of host hid the features of one of its rows: its
// first ones, or more merged into those it has.
func (m *Model) setFeats(hid uint32, i int, feats []features.ID) {
	sv := m.svcs.at(m.hosts[hid].svcs + uint32(i))
	if sv.n == 0 && !m.counted(hid, i) {
		m.storeFeats(hid, i, feats)
		return
	}
	m.merge(hid, i, feats)
}
