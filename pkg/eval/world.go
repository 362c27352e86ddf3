package eval

import (
	"fmt"
	"math"
	"path/filepath"

	"github.com/gpsscan/gps/pkg/batch"
	"github.com/gpsscan/gps/pkg/lab"
	"github.com/gpsscan/gps/pkg/row"
)

// World is a world directory loaded for replay.
type World struct {
	Truth []row.Service
	Seed  []row.Service
	// rows of each distinct truth service (duplicate rows merge into one)
	byTarget map[batch.Target][]int32
	seedSet  map[batch.Target]bool
	seedAddr map[uint32]bool
	slash16s []uint32 // the /16s of the world, from truth and seed
	Meta     lab.Meta
	SeedFrac float64
	NSlash16 int
}

// Services is the number of distinct services in truth.
func (w *World) Services() int { return len(w.byTarget) }

// Addresses is the size of the scanned space: every address of the /16s.
func (w *World) Addresses() uint64 { return uint64(w.NSlash16) << 16 }

// SeedAddresses is how many addresses the seed scanned on every port.
func (w *World) SeedAddresses() uint64 {
	return uint64(math.Round(float64(w.NSlash16) * 65536 * w.SeedFrac))
}

// SeedCost is the probes the seed took: every port of every seed address.
func (w *World) SeedCost() uint64 { return w.SeedAddresses() * 65535 }

// LoadWorld reads DIR/truth.jsonl, DIR/seed.jsonl and DIR/meta.json.
func LoadWorld(dir string) (*World, error) {
	meta, err := lab.ReadMeta(dir)
	if err != nil {
		return nil, fmt.Errorf("load world: %w", err)
	}
	w := &World{Meta: meta, byTarget: map[batch.Target][]int32{}, seedSet: map[batch.Target]bool{}, seedAddr: map[uint32]bool{}}
	s16, ok1 := number(meta.Params["slash16s"])
	frac, ok2 := number(meta.Params["seed_frac"])
	if !ok1 || !ok2 || s16 < 1 || frac <= 0 || frac > 1 {
		return nil, fmt.Errorf("load world: %s: params need slash16s >= 1 and 0 < seed_frac <= 1, have %v and %v",
			filepath.Join(dir, "meta.json"), meta.Params["slash16s"], meta.Params["seed_frac"])
	}
	w.NSlash16, w.SeedFrac = int(s16), frac
	if w.Truth, err = row.ReadAll(filepath.Join(dir, "truth.jsonl")); err != nil {
		return nil, fmt.Errorf("load world: %w", err)
	}
	if w.Seed, err = row.ReadAll(filepath.Join(dir, "seed.jsonl")); err != nil {
		return nil, fmt.Errorf("load world: %w", err)
	}
	seen16 := map[uint32]bool{}
	for i, s := range w.Truth {
		t := batch.Target{Addr: s.Addr, Port: uint16(s.Port)}
		w.byTarget[t] = append(w.byTarget[t], int32(i))
		seen16[s.Addr>>16] = true
	}
	for _, s := range w.Seed {
		t := batch.Target{Addr: s.Addr, Port: uint16(s.Port)}
		if _, ok := w.byTarget[t]; !ok {
			return nil, fmt.Errorf("load world: seed service %s:%d is not in truth.jsonl", s.IP, s.Port)
		}
		w.seedSet[t] = true
		w.seedAddr[s.Addr] = true
	}
	if len(seen16) > w.NSlash16 {
		return nil, fmt.Errorf("load world: truth spans %d /16s but meta.json says slash16s %d", len(seen16), w.NSlash16)
	}
	return w, nil
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	}
	return 0, false
}
