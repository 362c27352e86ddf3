package eval

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
)

// writeCyclesCSV writes cycles.csv: one row per cycle and policy.
func writeCyclesCSV(wr io.Writer, res *CyclesResult) error {
	// New columns go at the end, so that readers by position still work.
	if _, err := fmt.Fprintln(wr, "cycle,policy,coverage_real,coverage,stale,probes,probes_total,mean_age,held,seed_probes"); err != nil {
		return err
	}
	for _, r := range res.Rows {
		if _, err := fmt.Fprintf(wr, "%d,%s,%.6f,%.6f,%.6f,%d,%d,%.4f,%d,%d\n", r.Cycle, r.Policy, r.CoverageReal, r.Coverage, r.Stale,
			r.Probes, r.ProbesTotal, r.MeanAge, r.Held, r.SeedProbes); err != nil {
			return err
		}
	}
	return nil
}

// WriteCyclesTable prints the replay over cycles as an aligned table, and
// each cycle's continuous probes and real coverage against gps-anew's.
func WriteCyclesTable(wr io.Writer, res *CyclesResult) error {
	tw := tabwriter.NewWriter(wr, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "cycle\tpolicy\treal cov\tcoverage\tstale\tprobes\tprobes/anew\tmean age\theld\t\n")
	anew := map[int]CycleRow{}
	for _, r := range res.Rows {
		if r.Policy == PolicyAnew {
			anew[r.Cycle] = r
		}
	}
	for _, r := range res.Rows {
		ratio := float64(r.Probes) / float64(max(anew[r.Cycle].Probes, 1))
		fmt.Fprintf(tw, "%d\t%s\t%.4f\t%.4f\t%.2f%%\t%s\t%.3f\t%.3f\t%d\t\n", r.Cycle, r.Policy, r.CoverageReal, r.Coverage,
			100*r.Stale, human(float64(r.Probes)), ratio, r.MeanAge, r.Held)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(wr, "(fresh coverage and stale entries at the end of each cycle; probes a cycle, seed included; mean age in cycles;\n"+
		" continuous: seed fraction %g a cycle after cycle 0, gone after %d failed refreshes)\n", res.SeedFrac, res.Gone)
	return err
}

// renderCycles renders OUT/cycles.csv and OUT/cycles.png into files and
// returns their paths.
func renderCycles(c Config, cyc *CyclesResult, files map[string]func(io.Writer) error) (csvPath, pngPath string, err error) {
	csvPath, pngPath = filepath.Join(c.Out, "cycles.csv"), filepath.Join(c.Out, "cycles.png")
	var csvBuf, pngBuf bytes.Buffer
	if err := writeCyclesCSV(&csvBuf, cyc); err != nil {
		return "", "", fmt.Errorf("render %s: %w", csvPath, err)
	}
	if err := plotCycles(&pngBuf, cyc, c.World); err != nil {
		return "", "", fmt.Errorf("render %s: %w", pngPath, err)
	}
	files[csvPath] = func(wr io.Writer) error { _, err := wr.Write(csvBuf.Bytes()); return err }
	files[pngPath] = func(wr io.Writer) error { _, err := wr.Write(pngBuf.Bytes()); return err }
	return csvPath, pngPath, nil
}
