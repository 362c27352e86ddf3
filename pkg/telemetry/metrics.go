package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/gpsscan/gps/pkg/wire"
)

// Label names. Their values are bounded: a service name (seeder, modeler,
// predictor, prober), a phase (wire.PhaseSeed, PhasePriors, PhasePredicted,
// PhaseRefresh)
// or a stream name (bus.StreamTargets, ...). Never an address or a port.
const (
	LabelService = "service"
	LabelPhase   = "phase"
	LabelStream  = "stream"
	LabelReason  = "reason"
)

// Metric names, as the dashboards and alerts use them.
const (
	NameResultsIn         = "gps_results_in_total"
	NamePredictionsOut    = "gps_predictions_out_total"
	NameProbesSent        = "gps_probes_sent_total"
	NameDeadLettered      = "gps_messages_dead_lettered_total"
	NameModelKeys         = "gps_model_keys"
	NameModelHosts        = "gps_model_hosts"
	NameModelBytes        = "gps_model_bytes"
	NameConsumerPending   = "gps_consumer_pending_messages"
	NamePredictionLatency = "gps_prediction_latency_seconds"
	NameMessageHandle     = "gps_message_handle_seconds"
	NameLockstepGivenUp   = "gps_lockstep_given_up_total"
)

// Reasons a world prober gives up its lockstep wait (the reason label of
// gps_lockstep_given_up_total).
const (
	LockstepPredictorBehind = "predictor_behind" // the predictor had not acked the results in time
	LockstepNotPulled       = "not_pulled"       // their predictions had not reached the prober in time
	LockstepHeldLimit       = "held_limit"       // the prober held as many predictions as its consumer may deliver
	LockstepError           = "error"            // a JetStream request failed
)

// LockstepReasons are the values of the reason label.
func LockstepReasons() []string {
	return []string{LockstepPredictorBehind, LockstepNotPulled, LockstepHeldLimit, LockstepError}
}

// MetricNames returns the name of every metric Metrics registers (for a
// histogram, its base name: Prometheus adds _bucket, _sum and _count).
func MetricNames() []string {
	return append([]string{
		NameResultsIn, NamePredictionsOut, NameProbesSent, NameDeadLettered,
		NameModelKeys, NameModelHosts, NameModelBytes, NameConsumerPending,
		NamePredictionLatency, NameMessageHandle, NameLockstepGivenUp,
	}, append(cycleNames(), inventoryNames()...)...)
}

// Phases are the values of the phase label.
func Phases() []string {
	return []string{wire.PhaseSeed, wire.PhasePriors, wire.PhasePredicted, wire.PhaseRefresh}
}

// Metrics are the gps_* metrics the services share. Build one per registry
// with NewMetrics and hand it to every service of the process (`gps all`
// runs four services on one registry; building a second Metrics on the same
// registry panics on the duplicate registration). A service updates only the
// metrics that concern it.
type Metrics struct {
	// ResultsIn counts results a service consumed from RESULTS, by service
	// and phase (modeler and predictor; the prober's own results are
	// counted by the consumers).
	ResultsIn *prometheus.CounterVec
	// PredictionsOut counts predictions the predictor published, by phase
	// of the result that triggered them.
	PredictionsOut *prometheus.CounterVec
	// ProbesSent counts probes the prober sent, by phase of the target.
	ProbesSent *prometheus.CounterVec
	// DeadLettered counts messages a service sent to DEADLETTER.
	DeadLettered *prometheus.CounterVec

	// ModelKeys is the number of (port, feature) keys in the model.
	ModelKeys prometheus.Gauge
	// ModelHosts is the number of hosts the model has seen.
	ModelHosts prometheus.Gauge
	// ModelBytes is the in-memory size of the model's bitmaps.
	ModelBytes prometheus.Gauge
	// ConsumerPending is the number of messages of a stream not yet
	// delivered to the service's consumer (ConsumerInfo.NumPending), by
	// service and stream: the consumer lag.
	ConsumerPending *prometheus.GaugeVec

	// PredictionLatency observes, per result, the time from the result's
	// first publication to the publication of its predictions.
	PredictionLatency prometheus.Histogram
	// MessageHandle observes the time a service took to handle one message
	// (from receipt to ack), by service.
	MessageHandle *prometheus.HistogramVec
	// LockstepGivenUp counts, by reason, the lockstep waits a prober that
	// answers from a lab world gave up (--await-predictions): each one lets
	// the run's order part from the replay's. Zero on a live prober.
	LockstepGivenUp *prometheus.CounterVec
	// Cycles are the metrics of a continuous run (cycles.go).
	Cycles *CycleMetrics
	// Inventory are the inventory's (inventory.go).
	Inventory *InventoryMetrics
}

// NewMetrics registers the metrics on reg with promauto.With(reg). A nil
// reg registers nothing (the metrics still work), for tests.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		ResultsIn: f.NewCounterVec(prometheus.CounterOpts{
			Name: NameResultsIn,
			Help: "Results consumed from the RESULTS stream, by consuming service and phase.",
		}, []string{LabelService, LabelPhase}),
		PredictionsOut: f.NewCounterVec(prometheus.CounterOpts{
			Name: NamePredictionsOut,
			Help: "Predictions published to the PREDICTIONS stream, by phase of the triggering result.",
		}, []string{LabelPhase}),
		ProbesSent: f.NewCounterVec(prometheus.CounterOpts{
			Name: NameProbesSent,
			Help: "Probes sent by the prober, by phase of the target.",
		}, []string{LabelPhase}),
		DeadLettered: f.NewCounterVec(prometheus.CounterOpts{
			Name: NameDeadLettered,
			Help: "Messages a service could not use and sent to the DEADLETTER stream.",
		}, []string{LabelService}),
		ModelKeys: f.NewGauge(prometheus.GaugeOpts{
			Name: NameModelKeys,
			Help: "Keys (port and feature) of the co-occurrence model.",
		}),
		ModelHosts: f.NewGauge(prometheus.GaugeOpts{
			Name: NameModelHosts,
			Help: "Hosts the co-occurrence model has seen.",
		}),
		ModelBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: NameModelBytes,
			Help: "In-memory size of the co-occurrence model's bitmaps in bytes.",
		}),
		ConsumerPending: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: NameConsumerPending,
			Help: "Messages of a stream not yet delivered to the service's consumer (consumer lag).",
		}, []string{LabelService, LabelStream}),
		PredictionLatency: f.NewHistogram(prometheus.HistogramOpts{
			Name:    NamePredictionLatency,
			Help:    "Time from a result's first publication to the publication of its predictions.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16), // 5 ms .. 164 s
		}),
		MessageHandle: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    NameMessageHandle,
			Help:    "Time to handle one message, from receipt to ack, by service.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9), // 100 µs .. 6.6 s
		}, []string{LabelService}),
	}
	m.LockstepGivenUp = f.NewCounterVec(prometheus.CounterOpts{
		Name: NameLockstepGivenUp,
		Help: "Lockstep waits for predictions a world prober gave up, by reason (lab runs only).",
	}, []string{LabelReason})
	for _, r := range LockstepReasons() { // zero on a live prober, never absent
		m.LockstepGivenUp.WithLabelValues(r)
	}
	m.Cycles = newCycleMetrics(f)
	m.Inventory = newInventoryMetrics(f)
	return m
}

// Init creates the series of service at zero for every phase, so that a
// rate() over them starts at the first scrape instead of at the first event.
// Call it once per service the process runs.
func (m *Metrics) Init(service string) {
	for _, p := range Phases() {
		m.ResultsIn.WithLabelValues(service, p)
		m.PredictionsOut.WithLabelValues(p)
		m.ProbesSent.WithLabelValues(p)
	}
	m.DeadLettered.WithLabelValues(service)
	m.MessageHandle.WithLabelValues(service)
}
