// Package wire defines the messages on the bus: results, targets and
// predictions, as versioned JSON that downstream tools read. A RESULTS
// message carries one result or a batch of them, one per line (see
// DecodeResults and ResultBatch).
package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gpsscan/gps/pkg/row"
)

// Version is the version of every message this package writes.
const Version = 1

// Phases of the pipeline: the seed scan, the priors plan, the predictions,
// and the refresh probes of known services (continuous discovery).
const (
	PhaseSeed      = "seed"
	PhasePriors    = "priors"
	PhasePredicted = "predicted"
	PhaseRefresh   = "refresh"
)

// ErrBad marks a message that cannot be used (dead-lettered, not retried).
var ErrBad = errors.New("bad message")

// MaxQuoted bounds how many bytes of a message an error repeats: an error
// names the bad value, and it goes to logs and to a dead letter's reason,
// which must stay small whatever the message holds (a 600 KB "ip").
const MaxQuoted = 64

// maxErrText bounds the text of an error of the JSON decoder or of a row's
// check, which may quote the input too (a number a megabyte long).
const maxErrText = 256

// quote is %q of s, cut to MaxQuoted bytes with its full length.
func quote(s string) string {
	if len(s) <= MaxQuoted {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:MaxQuoted], len(s))
}

// short is the text of err, cut to maxErrText bytes.
func short(err error) string {
	s := err.Error()
	if len(s) <= maxErrText {
		return s
	}
	return strings.ToValidUTF8(s[:maxErrText], "") + fmt.Sprintf("... (%d bytes)", len(s))
}

// ValidPhase reports whether p is a phase.
func ValidPhase(p string) bool {
	return p == PhaseSeed || p == PhasePriors || p == PhasePredicted || p == PhaseRefresh
}

// Result is one service found (or imported): subject gps.results.<phase>,
// alone or in a batch (see DecodeResults).
type Result struct {
	V        int       `json:"v"`
	IP       string    `json:"ip"`
	Port     int       `json:"port"`
	Phase    string    `json:"phase"`
	Protocol string    `json:"protocol"`           // the fingerprint: http, tls, ssh, ...
	Data     string    `json:"data"`               // application-layer bytes as text (banner, HTTP head)
	TLSCert  *string   `json:"tls_cert,omitempty"` // certificate identity (subject or fingerprint)
	TLSOIDs  []string  `json:"tls_oids,omitempty"`
	Window   *int64    `json:"window"` // TCP window of the SYN-ACK
	ASN      *int64    `json:"asn"`
	Time     time.Time `json:"time"`
	Source   string    `json:"source,omitempty"` // "probe", "import"
	// Probes is the prober's cumulative probe count when the probe that
	// found the service was sent (the end of its sweep chunk): a curve of
	// services against probes is read from RESULTS alone. 0 (absent) for
	// imports and for messages of older probers.
	Probes uint64 `json:"probes,omitempty"`
	// Gone says the service did not answer its last gone-after refresh
	// probes: consumers retract it (the model counts live services only).
	// A gone result carries ip, port, phase, time, source and probes; its
	// data is empty.
	Gone bool `json:"gone,omitempty"`
	// Cycle is the cycle of a continuous run the service was found (or
	// found gone) in: consumers that keep per-cycle state (the predictor
	// predicts each host afresh each cycle) read it from the stream, so a
	// replay of RESULTS gives the same state. 0 (absent) outside cycles.
	Cycle int `json:"cycle,omitempty"`
}

// ResultFromRow turns a GPS row into a result.
func ResultFromRow(r row.Row, phase string, t time.Time, source string) Result {
	return Result{V: Version, IP: r.IP, Port: r.Port, Phase: phase, Protocol: r.Fingerprint, Data: r.Data,
		TLSCert: r.TLSCert, TLSOIDs: r.TLSOIDs, Window: r.Window, ASN: r.ASN, Time: t, Source: source}
}

// Row is the GPS row of a result.
func (r *Result) Row() row.Row {
	return row.Row{IP: r.IP, Port: r.Port, ASN: r.ASN, Data: r.Data, Fingerprint: r.Protocol, Window: r.Window,
		TLSCert: r.TLSCert, TLSOIDs: r.TLSOIDs}
}

// Service is the validated service of a result.
func (r *Result) Service() (row.Service, error) {
	rw := r.Row()
	a, err := rw.Validate()
	if err != nil {
		return row.Service{}, err
	}
	return row.Service{Row: rw, Addr: a}, nil
}

// DecodeResult parses and checks one result (a line of a RESULTS message;
// DecodeResults reads a whole message, batch or not).
func DecodeResult(b []byte) (Result, error) {
	var r Result
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("%w: result: %s", ErrBad, short(err))
	}
	return r, r.check()
}

// Target is one probe to send, or a sweep of a port across a prefix.
type Target struct {
	IP     string `json:"ip,omitempty"`     // a single address, or
	Prefix string `json:"prefix,omitempty"` // a whole prefix "a.b.c.d/n" (a plan group)
	Port   int    `json:"port"`
	// A sweep's prior: the seed found Hits services behind it on
	// SeedProbes seed addresses of the prefix, so the prober expects
	// Hits/SeedProbes services per probe until its chunks say otherwise.
	// Absent: Hits/(the prefix's size), GPS's own hitrate of a group.
	Hits       int     `json:"hits,omitempty"`
	SeedProbes float64 `json:"seed_probes,omitempty"`
}

// Targets is a batch of targets: subject gps.targets.<phase>.
type Targets struct {
	V       int      `json:"v"`
	Phase   string   `json:"phase"`
	Targets []Target `json:"targets"`
	// Skip: the seed's hosts inside the message's prefixes, scanned on
	// every port already, which its sweeps leave out (not probed, not
	// counted). Set by the modeler on the priors plan.
	Skip []string  `json:"skip,omitempty"`
	Time time.Time `json:"time"`
}

// DecodeTargets parses and checks a targets message.
func DecodeTargets(b []byte) (Targets, error) {
	var t Targets
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("%w: targets: %s", ErrBad, short(err))
	}
	if t.V != Version {
		return t, fmt.Errorf("%w: targets version %d, want %d", ErrBad, t.V, Version)
	}
	if !ValidPhase(t.Phase) {
		return t, fmt.Errorf("%w: targets phase %s", ErrBad, quote(t.Phase))
	}
	for i, ip := range t.Skip {
		if a, err := netip.ParseAddr(ip); err != nil || !a.Is4() {
			return t, fmt.Errorf("%w: skip %d: ip %s", ErrBad, i, quote(ip))
		}
	}
	for i, x := range t.Targets {
		if x.Port < 1 || x.Port > 65535 {
			return t, fmt.Errorf("%w: target %d: port %d", ErrBad, i, x.Port)
		}
		switch {
		case x.IP != "" && x.Prefix == "":
			if a, err := netip.ParseAddr(x.IP); err != nil || !a.Is4() {
				return t, fmt.Errorf("%w: target %d: ip %s", ErrBad, i, quote(x.IP))
			}
		case x.Prefix != "" && x.IP == "":
			if p, err := netip.ParsePrefix(x.Prefix); err != nil || !p.Addr().Is4() || p.Masked() != p {
				return t, fmt.Errorf("%w: target %d: prefix %s", ErrBad, i, quote(x.Prefix))
			}
			if x.Hits < 0 || !(x.SeedProbes >= 0) || math.IsInf(x.SeedProbes, 0) {
				return t, fmt.Errorf("%w: target %d: hits %d and seed_probes %g: want >= 0", ErrBad, i, x.Hits, x.SeedProbes)
			}
		default:
			return t, fmt.Errorf("%w: target %d: want exactly one of ip and prefix", ErrBad, i)
		}
	}
	return t, nil
}

// Evidence is the rule behind a prediction: (p_b, feature) -> port.
type Evidence struct {
	Port    int    `json:"port"`    // p_b, the port of the service that predicts
	Feature string `json:"feature"` // the GPS feature string of that service
	Count   uint32 `json:"count"`   // hosts of the model with the feature on p_b and a service on the predicted port
	Support uint32 `json:"support"` // hosts of the model with the feature on p_b
}

// Prediction is one predicted service: subject gps.predictions.<phase>,
// the phase of the result that triggered it.
type Prediction struct {
	V            int       `json:"v"`
	IP           string    `json:"ip"`
	Port         int       `json:"port"`
	Probability  float64   `json:"probability"` // count / support of the evidence
	Evidence     Evidence  `json:"evidence"`
	ModelVersion uint64    `json:"model_version"` // the RESULTS stream sequence the model had reached
	Time         time.Time `json:"time"`
}

// DecodePrediction parses and checks a prediction message.
func DecodePrediction(b []byte) (Prediction, error) {
	var p Prediction
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%w: prediction: %s", ErrBad, short(err))
	}
	if p.V != Version {
		return p, fmt.Errorf("%w: prediction version %d, want %d", ErrBad, p.V, Version)
	}
	if a, err := netip.ParseAddr(p.IP); err != nil || !a.Is4() {
		return p, fmt.Errorf("%w: prediction ip %s", ErrBad, quote(p.IP))
	}
	if p.Port < 1 || p.Port > 65535 || p.Probability < 0 || p.Probability > 1 {
		return p, fmt.Errorf("%w: prediction port %d probability %g", ErrBad, p.Port, p.Probability)
	}
	return p, nil
}

// Subjects.
const (
	ResultsPrefix     = "gps.results."
	TargetsPrefix     = "gps.targets."
	PredictionsPrefix = "gps.predictions."
	DeadLetterPrefix  = "gps.dlq."
)

// ResultsSubject is where results of a phase go.
func ResultsSubject(phase string) string { return ResultsPrefix + phase }

// TargetsSubject is where targets of a phase go.
func TargetsSubject(phase string) string { return TargetsPrefix + phase }

// PredictionsSubject is where predictions triggered by a result of a phase go.
func PredictionsSubject(phase string) string { return PredictionsPrefix + phase }

// SeedDone is the control record the seeder writes when the seed is
// published: key "seed" of the gps-control bucket.
type SeedDone struct {
	V       int       `json:"v"`
	Results int       `json:"results"`  // seed results published
	LastSeq uint64    `json:"last_seq"` // RESULTS stream sequence of the last one
	Time    time.Time `json:"time"`
}

// PlanDone is the control record the modeler writes when the priors plan is
// published: key "plan" of the gps-control bucket.
type PlanDone struct {
	V        int       `json:"v"`
	Groups   int       `json:"groups"`    // plan groups (prefix sweeps of one port)
	ModelSeq uint64    `json:"model_seq"` // RESULTS sequence the model had when it made the plan
	Time     time.Time `json:"time"`
}
