package schedule

// SeedPorts is the probes one seed address takes: every TCP port.
const SeedPorts = 65535

// PushSeed queues a seed of addr: every port of it, SeedPorts probes, at
// expected value yield per probe. Unlike a prediction, a seed's worth is
// mostly what it teaches (the ports and banners of a whole host), so the
// caller sets yield from its own estimate of that and may push the next
// seed once this one is released. An address pushed as a seed before is
// dropped; once pushed, predictions on it are dropped too (the seed
// probes them), and single probes released before it stay counted.
// PushSeed reports whether it queued the seed (false: a duplicate), so
// that a caller counting its pending seeds does not wait for a dropped one.
//
// A budget cuts a seed like a chunk: the released Work probes ports
// 1..Work.Port only.
func (s *Scheduler) PushSeed(addr uint32, yield float64, token any) bool {
	s.mu.Lock()
	_, dup := s.seeded[addr]
	if !dup {
		s.seeded[addr] = struct{}{}
		s.addToken(token)
		s.push(&item{yield: yield, probe: Target{Addr: addr}, seed: true, token: token})
	}
	s.mu.Unlock()
	if dup {
		s.doneIf(token)
	}
	return !dup
}

// MarkSeeded records addr as seeded without queueing its seed (it was
// probed before a restart): a later seed of it and predictions on it are
// dropped.
func (s *Scheduler) MarkSeeded(addr uint32) {
	s.mu.Lock()
	s.seeded[addr] = struct{}{}
	s.mu.Unlock()
}

// Seeded reports whether addr was pushed as a seed.
func (s *Scheduler) Seeded(addr uint32) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.seeded[addr]
	return ok
}

// releaseSeed turns a popped seed item into Work, cut by the budget (which
// TryNext checked is not spent, so at least one port is left); s.mu is held.
func (s *Scheduler) releaseSeed(it *item) Work {
	cost := uint64(SeedPorts)
	if s.c.Budget > 0 && s.released+cost > s.c.Budget {
		cost = s.c.Budget - s.released
	}
	s.released += cost
	s.stats.Probes += cost
	s.stats.Seeds++
	a := it.probe.Addr
	return Work{Kind: Seed, Port: uint16(cost), First: a, Last: a, Probes: cost, Yield: it.yield, Token: it.token}
}
