package resultpipe

import (
	"errors"
	"flag"
	"slices"
	"testing"
	"time"

	"github.com/gpsscan/gps/pkg/row"
	"github.com/gpsscan/gps/pkg/wire"
)

// TestPolicy checks the modeler's and predictor's allow list: the lab by
// default, the flags as the prober's, and a message with a result outside
// it refused whole.
func TestPolicy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		ok      bool
		allowed []string
		refused []string
	}{
		{"default: the lab", nil, true, []string{"127.0.0.1", "127.200.1.1"}, []string{"8.8.8.8", "10.0.0.1"}},
		{"allow", []string{"--allow", "127.1.0.0/16,8.8.8.0/24"}, true, []string{"127.1.2.3", "8.8.8.8"}, []string{"127.2.0.1", "1.1.1.1"}},
		{"block", []string{"--allow", "8.8.0.0/16", "--block-file", "testdata/block.txt"}, true, []string{"8.8.4.4"}, []string{"8.8.8.8"}},
		{"nothing allowed", []string{"--allow", "10.0.0.0/8"}, false, nil, nil},
		{"bad prefix", []string{"--allow", "300.0.0.0/8"}, false, nil, nil},
		{"missing file", []string{"--allow-file", "testdata/none.txt"}, false, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c ConsumerConfig
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			c.RegisterFlags(fs)
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if err := c.WithDefaults().Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate = %v, want ok %v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			pol, err := c.Policy()
			if err != nil {
				t.Fatal(err)
			}
			for _, ip := range append(tc.allowed, tc.refused...) {
				// The address second in a batch: one result outside refuses the message.
				var b wire.ResultBatch
				for _, a := range []string{tc.allowed[0], ip} {
					r := wire.ResultFromRow(row.Row{IP: a, Port: 80}, wire.PhaseSeed, time.Unix(0, 0), "test")
					if _, err := b.Add(&r); err != nil {
						t.Fatal(err)
					}
				}
				rs, err := DecodeMessage(b.Take(), pol)
				if allowed := slices.Contains(tc.allowed, ip); allowed && (err != nil || len(rs) != 2) || !allowed && !errors.Is(err, ErrRefused) {
					t.Errorf("%s: %d results, err %v; want allowed %v", ip, len(rs), err, allowed)
				}
			}
		})
	}
}
