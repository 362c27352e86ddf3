package eval

import (
	"fmt"
	"io"

	"github.com/gpsscan/gps/pkg/gps"
	"github.com/gpsscan/gps/pkg/lab"
)

// PolicyPipeline is the running pipeline's name in cycles.csv.
const PolicyPipeline = "pipeline"

// ContinuousRandSeed is the seed of the cyclic order the continuous
// policy's seeds walk on world base: a seeder given it (over base's space,
// in address order) samples the same addresses each cycle.
func ContinuousRandSeed(base *World) int64 {
	s, _ := number(base.Meta.Params["seed"])
	return int64(s) ^ seedSalt
}

// ContinuousSeedFrac is the continuous policy's seed fraction after cycle 0.
func ContinuousSeedFrac(base *World, cp CycleParams) float64 {
	return cp.withDefaults(base).SeedFrac
}

// PipelineInventory measures a running pipeline's inventory over the
// cycles of a world, with the metrics of the replay (CycleRow): the caller
// confirms what answered and drops what is gone, from RESULTS.
type PipelineInventory struct {
	inv   *inventory
	base  *World
	dir   string
	tl    *lab.Timeline
	total uint64
}

// NewPipelineInventory measures against the world in dir, whose cycle 0 is
// base.
func NewPipelineInventory(dir string, base *World) *PipelineInventory {
	return &PipelineInventory{inv: newInventory(), base: base, dir: dir}
}

// Confirm records that (addr, port) answered in cycle k after at of the
// cycle's probes (seed included).
func (pi *PipelineInventory) Confirm(addr uint32, port uint16, k int, at float64) {
	pi.inv.confirm(gps.Target{Addr: addr, Port: port}, nil, k, at)
}

// Gone drops (addr, port).
func (pi *PipelineInventory) Gone(addr uint32, port uint16) {
	delete(pi.inv.held, gps.Target{Addr: addr, Port: port})
}

// Measure closes cycle k, in which the pipeline sent probes (seedProbes of
// them the seed's), against the world's truth at cycle k.
func (pi *PipelineInventory) Measure(k int, probes, seedProbes uint64) (CycleRow, error) {
	w := pi.base
	if k > 0 {
		if pi.tl == nil {
			tl, err := lab.OpenTimeline(pi.dir)
			if err != nil {
				return CycleRow{}, fmt.Errorf("measure cycle %d: %w", k, err)
			}
			pi.tl = tl
		}
		if err := pi.tl.Seek(k); err != nil {
			return CycleRow{}, fmt.Errorf("measure cycle %d: %w", k, err)
		}
		w = cycleWorld(pi.base, pi.tl.Services(), nil, 0)
	}
	r := pi.inv.measure(w, k, PolicyPipeline, probes, seedProbes, pi.total)
	pi.total = r.ProbesTotal
	return r, nil
}

// WriteCyclesCSV writes rows in cycles.csv's columns.
func WriteCyclesCSV(wr io.Writer, rows []CycleRow) error {
	return writeCyclesCSV(wr, &CyclesResult{Rows: rows})
}
