package netprobe

import (
	"hash/maphash"
	"sync"

	"github.com/gpsscan/gps/pkg/row"
)

// Reasons a completed connection is not returned as a service.
const (
	ReasonNoData     = "no-data"     // the handshake completed, nothing was said (LZR: a SYN-ACK is not a service)
	ReasonZeroWindow = "zero-window" // the SYN-ACK offered a window of 0: a middlebox or tarpit, not a server (LZR)
	ReasonPseudo     = "pseudo"      // the host answers the same on too many ports
)

// filter applies the LZR-style rules to a grabbed row; "" keeps it.
func (p *Prober) filter(addr uint32, r *row.Row) string {
	if r.Window != nil && *r.Window == 0 && !p.o.KeepEmpty {
		p.st.DropZeroWindow.Add(1)
		return ReasonZeroWindow
	}
	if r.Data == "" && r.Fingerprint != "tls" && !p.o.KeepEmpty {
		p.st.DropNoData.Add(1)
		return ReasonNoData
	}
	if p.o.PseudoPorts > 0 && p.hosts.seen(addr, uint16(r.Port), answerKey(r)) > p.o.PseudoPorts {
		p.st.DropPseudo.Add(1)
		return ReasonPseudo
	}
	return ""
}

var answerSeed = maphash.MakeSeed()

// answerKey hashes what makes two answers "identical".
func answerKey(r *row.Row) uint64 {
	var h maphash.Hash
	h.SetSeed(answerSeed)
	h.WriteString(r.Fingerprint)
	h.WriteByte(0)
	h.WriteString(r.Data)
	h.WriteByte(0)
	if r.TLSCert != nil {
		h.WriteString(*r.TLSCert)
	}
	return h.Sum64()
}

// hostMemory counts, per host, the distinct ports that gave each answer. It
// forgets the oldest hosts beyond max (a ring of insertion order).
type hostMemory struct {
	mu    sync.Mutex
	max   int
	hosts map[uint32]*hostAnswers
	order []uint32 // ring of hosts in insertion order
	next  int
}

type hostAnswers struct {
	// answer -> ports seen with it (kept up to the first few hundred; the
	// count goes on)
	ports map[uint64]*portSet
}

type portSet struct {
	ports []uint16
	n     int
}

func newHostMemory(max int) *hostMemory {
	return &hostMemory{max: max, hosts: map[uint32]*hostAnswers{}}
}

// seen records that addr answered key on port and returns how many distinct
// ports of addr have answered key.
func (m *hostMemory) seen(addr uint32, port uint16, key uint64) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	h := m.hosts[addr]
	if h == nil {
		h = &hostAnswers{ports: map[uint64]*portSet{}}
		m.hosts[addr] = h
		if len(m.order) < m.max {
			m.order = append(m.order, addr)
		} else {
			delete(m.hosts, m.order[m.next])
			m.order[m.next] = addr
			m.next = (m.next + 1) % m.max
		}
	}
	ps := h.ports[key]
	if ps == nil {
		ps = &portSet{}
		h.ports[key] = ps
	}
	for _, q := range ps.ports {
		if q == port {
			return ps.n
		}
	}
	if len(ps.ports) < 512 {
		ps.ports = append(ps.ports, port)
	}
	ps.n++
	return ps.n
}
