package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Names of the metrics of a continuous run.
const (
	NameCycle           = "gps_cycle"
	NameCycleStarted    = "gps_cycle_start_time_seconds"
	NameSeedDone        = "gps_cycle_seed_addresses_done"
	NameSeedTotal       = "gps_cycle_seed_addresses"
	NameRefreshAnswered = "gps_refresh_answered_total"
	NameRefreshMissed   = "gps_refresh_missed_total"
	NameRefreshGone     = "gps_refresh_gone_total"
	NameRefreshKnown    = "gps_refresh_known_services"
	NameRefreshDone     = "gps_refresh_done_cycle"
)

// cycleNames are the names CycleMetrics registers.
func cycleNames() []string {
	return []string{NameCycle, NameCycleStarted, NameSeedDone, NameSeedTotal, NameRefreshAnswered, NameRefreshMissed,
		NameRefreshGone, NameRefreshKnown, NameRefreshDone}
}

// CycleMetrics are the metrics of a continuous run: the seeder sets the
// cycle gauges, the prober counts its refreshes.
type CycleMetrics struct {
	Cycle           prometheus.Gauge   // the cycle the pipeline is in
	Started         prometheus.Gauge   // when it began, Unix seconds
	SeedDone        prometheus.Gauge   // the cycle's seed addresses published
	SeedTotal       prometheus.Gauge   // and in all
	RefreshAnswered prometheus.Counter // refresh probes answered
	RefreshMissed   prometheus.Counter // and not
	Gone            prometheus.Counter // services declared gone
	Known           prometheus.Gauge   // services the prober refreshes
	RefreshDone     prometheus.Gauge   // the last cycle whose refreshes are all probed
}

func newCycleMetrics(f promauto.Factory) *CycleMetrics {
	return &CycleMetrics{
		Cycle:           f.NewGauge(prometheus.GaugeOpts{Name: NameCycle, Help: "The cycle a continuous run is in, from 0."}),
		Started:         f.NewGauge(prometheus.GaugeOpts{Name: NameCycleStarted, Help: "When the current cycle began, Unix seconds."}),
		SeedDone:        f.NewGauge(prometheus.GaugeOpts{Name: NameSeedDone, Help: "Seed addresses of the current cycle published."}),
		SeedTotal:       f.NewGauge(prometheus.GaugeOpts{Name: NameSeedTotal, Help: "Seed addresses of the current cycle."}),
		RefreshAnswered: f.NewCounter(prometheus.CounterOpts{Name: NameRefreshAnswered, Help: "Refresh probes of known services that answered."}),
		RefreshMissed:   f.NewCounter(prometheus.CounterOpts{Name: NameRefreshMissed, Help: "Refresh probes of known services that did not answer."}),
		Gone:            f.NewCounter(prometheus.CounterOpts{Name: NameRefreshGone, Help: "Known services declared gone after --gone-after missed refreshes."}),
		Known:           f.NewGauge(prometheus.GaugeOpts{Name: NameRefreshKnown, Help: "Known services the prober refreshes each cycle."}),
		RefreshDone:     f.NewGauge(prometheus.GaugeOpts{Name: NameRefreshDone, Help: "The last cycle whose refresh probes are all probed (-1: none since the prober started)."}),
	}
}
