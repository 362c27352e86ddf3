package inventory

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gpsscan/gps/pkg/bus/bustest"
	"github.com/gpsscan/gps/pkg/wire"
)

// Export prints the bucket as JSON lines, by address (as numbers, not
// strings) then port, in the state asked for.
func TestExport(t *testing.T) {
	rs := []wire.Result{
		live("127.1.0.10", 80, "a", wire.PhaseSeed, 0),
		live("127.1.0.9", 443, "b", wire.PhaseSeed, 0),
		live("127.1.0.9", 22, "c", wire.PhaseSeed, 0),
		gone("127.1.0.9", 443, 5),
	}
	b := bustest.New(t)
	runAll(t, b, publish(t, b, rs, 0))
	for _, c := range []struct{ state, want string }{
		{wire.StateLive, "127.1.0.9:22 live,127.1.0.10:80 live"},
		{wire.StateGone, "127.1.0.9:443 gone"},
		{StateAll, "127.1.0.9:22 live,127.1.0.9:443 gone,127.1.0.10:80 live"},
	} {
		t.Run(c.state, func(t *testing.T) {
			var out bytes.Buffer
			if err := Export(context.Background(), b, c.state, &out); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
				var st wire.ServiceState
				if err := json.Unmarshal([]byte(line), &st); err != nil {
					t.Fatalf("line %q: %v", line, err)
				}
				got = append(got, fmt.Sprintf("%s:%d %s", st.IP, st.Port, st.State))
			}
			if g := strings.Join(got, ","); g != c.want {
				t.Errorf("got %s, want %s", g, c.want)
			}
		})
	}
	if err := Export(context.Background(), b, "bogus", &bytes.Buffer{}); err == nil {
		t.Error("state bogus: no error")
	}
}
