package schedule

// Forget starts a new cycle of a long-running scheduler: it forgets the
// targets sent, the seeds released and the sweeps finished, so that they
// may be pushed again (a refresh probes a known service again; a new plan
// sweeps a group again). Work still pending or in flight is kept, and so
// is what the sweeps learned of yields, through their sweeps.
func (s *Scheduler) Forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, x := range s.probes {
		if x == sentMark {
			delete(s.probes, k)
		}
	}
	pendingSeeds := map[uint32]struct{}{}
	for _, e := range s.q {
		if e.it.seed {
			pendingSeeds[e.it.probe.Addr] = struct{}{}
		}
	}
	s.seeded = pendingSeeds
	for k, x := range s.sweeps {
		if x.item == nil && x.open == 0 {
			delete(s.sweeps, k)
		}
	}
}
