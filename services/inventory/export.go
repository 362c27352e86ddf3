package inventory

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"

	"github.com/gpsscan/gps/pkg/bus"
	"github.com/gpsscan/gps/pkg/wire"
)

// States that Export takes: a service's state, or StateAll.
const StateAll = "all"

// ValidState reports whether Export takes state.
func ValidState(state string) bool {
	return state == wire.StateLive || state == wire.StateGone || state == StateAll
}

// Export writes the services of the bucket in state (wire.StateLive,
// wire.StateGone or StateAll) to w as JSON lines, sorted by address, then
// port: the current inventory for a downstream tool.
func Export(ctx context.Context, b *bus.Bus, state string, w io.Writer) error {
	if !ValidState(state) {
		return fmt.Errorf("%w: state %q: want live, gone or all", ErrConfig, state)
	}
	kv, err := b.Inventory(ctx)
	if err != nil {
		return err
	}
	states, err := Load(ctx, kv)
	if err != nil {
		return err
	}
	list := make([]*wire.ServiceState, 0, len(states))
	for _, st := range states {
		if state == StateAll || st.State == state {
			list = append(list, st)
		}
	}
	slices.SortFunc(list, func(a, b *wire.ServiceState) int {
		x, _ := netip.ParseAddr(a.IP)
		y, _ := netip.ParseAddr(b.IP)
		if c := x.Compare(y); c != 0 {
			return c
		}
		return a.Port - b.Port
	})
	out := bufio.NewWriter(w)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	for _, st := range list {
		if err := enc.Encode(st); err != nil {
			return fmt.Errorf("export inventory: %w", err)
		}
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("export inventory: %w", err)
	}
	return nil
}
