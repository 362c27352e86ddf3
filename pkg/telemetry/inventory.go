package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/gpsscan/gps/pkg/wire"
)

// Names of the inventory's metrics.
const (
	NameInventoryServices = "gps_inventory_services"
	NameInventoryEvents   = "gps_inventory_events_total"
	NameInventoryLastSeen = "gps_inventory_last_seen_mean_timestamp_seconds"
)

// Label names of the inventory's metrics; their values are wire.StateLive
// and wire.StateGone, and wire.EventNew, EventChanged and EventGone.
const (
	LabelState = "state"
	LabelEvent = "event"
)

func inventoryNames() []string {
	return []string{NameInventoryServices, NameInventoryEvents, NameInventoryLastSeen}
}

// InventoryMetrics are the inventory's: its size, what happens to the
// services (per cycle: the increase over the cycle's length) and how old
// its data is.
type InventoryMetrics struct {
	Services *prometheus.GaugeVec   // services in the bucket, by state (live, gone)
	Events   *prometheus.CounterVec // events published, by event (new, changed, gone)
	// LastSeen is the mean time the live services last answered, Unix
	// seconds: time() minus it is the data's mean age.
	LastSeen prometheus.Gauge
}

func newInventoryMetrics(f promauto.Factory) *InventoryMetrics {
	m := &InventoryMetrics{
		Services: f.NewGaugeVec(prometheus.GaugeOpts{Name: NameInventoryServices,
			Help: "Services in the inventory (bucket gps-inventory), by state: live or gone."}, []string{LabelState}),
		Events: f.NewCounterVec(prometheus.CounterOpts{Name: NameInventoryEvents,
			Help: "Service events the inventory published (gps.inventory.>), by event: new, changed or gone."}, []string{LabelEvent}),
		LastSeen: f.NewGauge(prometheus.GaugeOpts{Name: NameInventoryLastSeen,
			Help: "Mean time the live services of the inventory last answered, Unix seconds (0: none live)."}),
	}
	// Every series from the start, so that rate() and increase() see the
	// first events.
	for _, s := range []string{wire.StateLive, wire.StateGone} {
		m.Services.WithLabelValues(s)
	}
	for _, e := range []string{wire.EventNew, wire.EventChanged, wire.EventGone} {
		m.Events.WithLabelValues(e)
	}
	return m
}
