package wire

import (
	"strconv"
	"time"
)

// The inventory: the latest state of every service found, kept by the
// inventory service in the key-value bucket gps-inventory (one key a
// service, InventoryKey), and its events on gps.inventory.<event>.
const (
	InventoryPrefix = "gps.inventory."

	EventNew     = "new"     // a service seen for the first time, or again after it was gone
	EventChanged = "changed" // a live service's protocol, data or certificate changed
	EventGone    = "gone"    // a live service did not answer its refresh probes

	StateLive = "live"
	StateGone = "gone"
)

// InventorySubject is where events of a kind go.
func InventorySubject(event string) string { return InventoryPrefix + event }

// InventoryKey is the bucket key of a service: "127.1.2.3.80", the address
// then the port, in the characters a key may hold.
func InventoryKey(ip string, port int) string { return ip + "." + strconv.Itoa(port) }

// ServiceState is the latest state of one service: the value of its key in
// the gps-inventory bucket.
type ServiceState struct {
	V         int        `json:"v"`
	IP        string     `json:"ip"`
	Port      int        `json:"port"`
	Protocol  string     `json:"protocol"`
	Data      string     `json:"data"`
	TLSCert   *string    `json:"tls_cert,omitempty"`
	ASN       *int64     `json:"asn"`
	State     string     `json:"state"`             // StateLive or StateGone
	FirstSeen time.Time  `json:"first_seen"`        // its first result (of this life: since it was last gone)
	LastSeen  time.Time  `json:"last_seen"`         // its last result that answered
	GoneAt    *time.Time `json:"gone_at,omitempty"` // the time of its gone result, while gone
	Seq       uint64     `json:"seq"`               // RESULTS stream sequence of the last result applied to it
}

// ServiceEvent is a message of the INVENTORY stream: what happened and the
// service's state after it.
type ServiceEvent struct {
	Event string `json:"event"` // EventNew, EventChanged or EventGone
	ServiceState
}
