package seeder

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gpsscan/gps/pkg/row"
)

// ErrBadRecord is wrapped by every error about a record of an imported file.
var ErrBadRecord = errors.New("bad record")

// readFunc reads a seed file, calling fn for each service and skip for each
// record that is no service. Errors name FILE:LINE (*row.LineError).
type readFunc func(path string, fn func(row.Row) error, skip func()) error

// reader returns the reader of c.Format.
func reader(c Config) (readFunc, error) {
	switch c.Format {
	case FormatGPS:
		return func(path string, fn func(row.Row) error, _ func()) error {
			return row.ReadFile(path, func(s row.Service) error { return fn(s.Row) })
		}, nil
	case FormatLZR:
		return lines(parseLZR), nil
	case FormatZGrab2:
		port := c.Port
		return lines(func(b []byte) ([]row.Row, error) { return parseZGrab2(b, port) }), nil
	}
	return nil, fmt.Errorf("%w: format %q", ErrConfig, c.Format)
}

// lines reads a JSON-lines file (gzip if .gz) with parse turning one line
// into its services (none: a skipped record).
func lines(parse func([]byte) ([]row.Row, error)) readFunc {
	return func(path string, fn func(row.Row) error, skip func()) error {
		return row.EachFileLine(path, func(_ int, b []byte) error {
			rows, err := parse(b)
			if err != nil {
				return err
			}
			if len(rows) == 0 {
				skip()
			}
			for _, r := range rows {
				if _, err := r.Validate(); err != nil {
					return err
				}
				if err := fn(r); err != nil {
					return err
				}
			}
			return nil
		})
	}
}

// lzrRecord is the part of an LZR output line the seed needs. LZR
// (github.com/stanford-esrg/lzr) writes one JSON object per service with the
// metadata of the host's last packet: saddr/sport are the scanned host and
// its port (the packet came from them), daddr/dport the scanner's side.
type lzrRecord struct {
	Saddr          *string `json:"saddr"`
	Sport          *int    `json:"sport"`
	Window         *int64  `json:"window"`
	Data           string  `json:"data"`
	Fingerprint    string  `json:"fingerprint"`
	AckingFirewall bool    `json:"ackingFirewall"`
}

// parseLZR maps an LZR line to a row: ip = saddr, p = sport, data = data,
// fingerprint = fingerprint, w = window. A record LZR marks as an acking
// firewall (a host that completes the handshake on any port) is no service
// and is skipped.
func parseLZR(b []byte) ([]row.Row, error) {
	var x lzrRecord
	if err := json.Unmarshal(b, &x); err != nil {
		return nil, fmt.Errorf("%w: lzr: %v", ErrBadRecord, err)
	}
	if x.Saddr == nil || x.Sport == nil {
		return nil, fmt.Errorf("%w: lzr: want \"saddr\" and \"sport\" (the scanned host and port)", ErrBadRecord)
	}
	if x.AckingFirewall {
		return nil, nil
	}
	return []row.Row{{IP: *x.Saddr, Port: *x.Sport, Data: x.Data, Fingerprint: x.Fingerprint, Window: x.Window}}, nil
}
