package model

import "slices"

// Retraction: the model counts the live services only. Remove takes one
// service out (all its rows: a service's features are the union of its
// rows), RemoveHost every service of a host; a host that moved is removed
// at its old address and added at its new one (its prefix and AS features
// change with it, so it is added from its new rows). After any sequence of
// Adds and Removes the counts, Rows and Predict are those of a batch build
// of the services left, in any order:
//
//   - A counted service leaves its keys' host sets (a key falling below
//     MinCount hosts drops its counts, as it would never have made them),
//     and its port leaves the count lists of its host's other services'
//     keys and the port's bitmap of hosts (nil when empty): the work of
//     counting it, undone (the other services' keys times one port, its
//     keys times the host's other ports).
//   - A host that falls under MinPorts leaves every count; its last service
//     waits, with its features, as a host's first service does.
//   - A pseudo host (more than MaxPorts) keeps the features of its
//     services: one that falls back to MaxPorts is counted again, in the
//     next flush, as a host that arrived with those services.
//   - A host with no service left frees its id, which the next new host
//     takes (the lowest free one first), and its address.
//   - Keys and dictionary strings stay: a key of no host keeps no count and
//     no rule (Each passes it over, Predict finds nothing under it), so it
//     reads as one never made, and it serves again when its feature comes
//     back. They are the only things that grow with churn.
//
// A Remove is a change: it counts in Version.

// Remove removes the service at (addr, port), every row of it, from the
// model and reports whether it was there.
func (m *Model) Remove(addr uint32, port uint16) bool {
	hid, ok := m.hostIdx[addr]
	if !ok {
		return false
	}
	h := &m.hosts[hid]
	i := slices.IndexFunc(m.svcs.block(h.svcs, int(h.n)), func(sv service) bool { return sv.port == port })
	if i < 0 {
		return false
	}
	if h.staged > 0 {
		m.applyStage() // its staged rows address its services by index
	}
	m.removeAt(hid, i)
	return true
}

// RemoveHost removes every service of the host at addr (a host gone, or
// moved away) and returns how many there were. It is a Remove of each, and
// counts as that many changes in Version.
func (m *Model) RemoveHost(addr uint32) int {
	hid, ok := m.hostIdx[addr]
	if !ok {
		return 0
	}
	if m.hosts[hid].staged > 0 {
		m.applyStage()
	}
	h := &m.hosts[hid]
	n := int(h.n)
	m.retract(hid, h.countedServices())
	for i := range n {
		m.releaseFeats(m.svcs.at(h.svcs + uint32(i)))
	}
	m.svcs.release(h.svcs, classOf(n))
	m.version += uint64(n)
	m.services -= n
	m.freeHost(hid)
	return n
}

// removeAt removes service i of host hid (none of its rows staged).
func (m *Model) removeAt(hid uint32, i int) {
	m.version++
	h := &m.hosts[hid]
	c := h.countedServices()
	if h.state == stateCounted && h.n == MinPorts {
		// Under MinPorts: out of every count, as a batch build leaves it.
		// The service left waits, as a host's first one does.
		m.retract(hid, c)
		c = 0
		h.state, h.pendFrom = stateWaiting, 0
	}
	if i < c {
		m.uncountService(hid, i, c)
	} else {
		m.releaseFeats(m.svcs.at(h.svcs + uint32(i)))
	}
	m.dropService(hid, i)
	switch {
	case h.n == 0:
		m.freeHost(hid)
	case h.state == statePseudo && h.n == MaxPorts:
		m.revive(hid)
	}
}

// uncountService takes service i of host hid, one of its first c services
// (the counted ones), out of every count and releases its keys.
func (m *Model) uncountService(hid uint32, i, c int) {
	h := &m.hosts[hid]
	svcs := m.svcs.block(h.svcs, c)
	var all, buf [MaxPorts]uint16
	for j := range svcs {
		all[j] = svcs[j].port
	}
	sortPorts(all[:c])
	sv := &svcs[i]
	others := allBut(all[:c], sv.port, &buf)
	for _, k := range m.ids.block(sv.off, int(sv.n)) {
		ks := m.keys.at(k)
		m.w.removeHost(ks, hid)
		m.w.bumpMany(ks, others, -1)
	}
	if sv.n > 0 {
		m.ids.release(sv.off, classOf(int(sv.n)))
	}
	sv.n, sv.off = 0, 0
	gone := []uint16{sv.port}
	for j := range svcs {
		if j == i {
			continue
		}
		for _, k := range m.ids.block(svcs[j].off, int(svcs[j].n)) {
			m.w.bumpMany(m.keys.at(k), gone, -1)
		}
	}
	m.unportHost(sv.port, hid)
}

// dropService removes service i (holding nothing) from host hid's list,
// keeping the order of the others: the counted ones stay first.
func (m *Model) dropService(hid uint32, i int) {
	h := &m.hosts[hid]
	n := int(h.n)
	b := m.svcs.block(h.svcs, n)
	copy(b[i:], b[i+1:])
	if n == 1 {
		m.svcs.release(h.svcs, 0)
		h.svcs = 0
	} else {
		h.svcs = m.svcs.resize(h.svcs, n, n-1)
	}
	h.n--
	if h.pending && uint32(i) < h.pendFrom {
		h.pendFrom--
	}
	m.services--
}

// revive counts again a pseudo host fallen back to MaxPorts services: all
// of them wait, with their features, for the next flush, as those of a
// host that just arrived.
func (m *Model) revive(hid uint32) {
	if len(m.pending) >= m.window {
		m.flush()
	}
	h := &m.hosts[hid]
	h.state = stateCounted
	h.pending, h.pendFrom = true, 0
	m.pending = append(m.pending, hid)
	m.markDirty()
}

// freeHost forgets host hid, with no service left: its address goes, its id
// is free for the next new host. (An entry of it left in Model.pending is
// passed over: it is no longer pending.)
func (m *Model) freeHost(hid uint32) {
	delete(m.hostIdx, m.hosts[hid].addr)
	m.hosts[hid] = host{}
	m.free.Add(hid)
}

// unportHost takes host hid out of the bitmap of hosts with a service on
// port p; an empty bitmap goes, as one never made.
func (m *Model) unportHost(p uint16, hid uint32) {
	b := m.portHosts[p]
	b.Remove(hid)
	if b.IsEmpty() {
		m.portHosts[p] = nil
	}
}

// idsToFeats turns the key list of a service taken out of the counts back
// into its features (sorted), as a service not counted yet holds them.
func (m *Model) idsToFeats(sv *service) {
	n := int(sv.n)
	if n == 0 {
		sv.off = 0
		return
	}
	off := m.feats.alloc(classOf(n))
	fs := m.feats.block(off, n)
	for j, k := range m.ids.block(sv.off, n) {
		fs[j] = m.keys.at(k).feat
	}
	slices.Sort(fs)
	m.ids.release(sv.off, classOf(n))
	sv.off = off
}
