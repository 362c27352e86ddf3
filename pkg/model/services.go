package model

// Services calls fn for every distinct (address, port) the model has been
// given, pseudo-service hosts included, in no fixed order.
func (m *Model) Services(fn func(addr uint32, port uint16)) {
	for i := range m.hosts {
		h := &m.hosts[i]
		for _, sv := range m.svcs.block(h.svcs, int(h.n)) {
			fn(h.addr, sv.port)
		}
	}
}
