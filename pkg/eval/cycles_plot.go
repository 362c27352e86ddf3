package eval

import (
	"fmt"
	"image/color"
	"io"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// cyclePalette colours the policies over cycles.
func cyclePalette(policy string) color.Color {
	switch policy {
	case PolicyAnew:
		return palette["gps-batch"]
	case PolicyRefreshGPS:
		return palette["popularity"]
	}
	return palette["gps-stream"]
}

// plotCycles draws, over cycles, each policy's real fresh coverage and its
// probes a cycle (seed included), side by side.
func plotCycles(wr io.Writer, res *CyclesResult, worldDir string) error {
	name := filepath.Base(filepath.Clean(worldDir))
	panels := []struct {
		title, ylabel string
		val           func(CycleRow) float64
	}{
		{"Real fresh coverage by cycle: %s", "fraction of the cycle's real services held", func(r CycleRow) float64 { return r.CoverageReal }},
		{"Probes by cycle: %s", "probes in the cycle, seed included", func(r CycleRow) float64 { return float64(r.Probes) }},
	}
	c := vgimg.PngCanvas{Canvas: vgimg.New(16*vg.Inch, 6*vg.Inch)}
	tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: vg.Inch / 4, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8,
		PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}
	dc := draw.New(c)
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = fmt.Sprintf(pn.title, name)
		p.X.Label.Text = "cycle"
		p.Y.Label.Text = pn.ylabel
		p.Y.Min = 0
		if i == 0 {
			p.Y.Max = 1
		}
		p.Legend.Top = i == 0 // probes start high: their legend goes below
		p.Legend.Left = true
		p.Add(plotter.NewGrid())
		for _, pol := range res.Policies {
			var xys plotter.XYs
			for _, r := range res.Rows {
				if r.Policy == pol {
					xys = append(xys, plotter.XY{X: float64(r.Cycle), Y: pn.val(r)})
				}
			}
			if len(xys) == 0 {
				continue
			}
			l, pts, err := plotter.NewLinePoints(xys)
			if err != nil {
				return fmt.Errorf("plot %s: %w", pol, err)
			}
			l.Color, pts.Color = cyclePalette(pol), cyclePalette(pol)
			l.Width = vg.Points(2)
			p.Add(l, pts)
			p.Legend.Add(pol, l, pts)
		}
		p.Draw(tiles.At(dc, i, 0))
	}
	_, err := c.WriteTo(wr)
	return err
}
