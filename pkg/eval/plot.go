package eval

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var palette = map[string]color.Color{
	"exhaustive": color.RGBA{128, 128, 128, 255},
	"popularity": color.RGBA{230, 159, 0, 255},
	"gps-batch":  color.RGBA{0, 114, 178, 255},
	"gps-stream": color.RGBA{213, 94, 0, 255},
	"oracle":     color.RGBA{0, 158, 115, 255},
	"pipeline":   color.RGBA{204, 121, 167, 255},

	"gps-stream-own": color.RGBA{86, 180, 233, 255},
}

// plotCurves draws real coverage in two panels: against probes with the
// seed included (bandwidth, as GPS reports it) and against probes after the
// seed (where the policies differ), both log-scaled.
func plotCurves(wr io.Writer, w *World, curves []*Curve, worldDir string) error {
	name := filepath.Base(filepath.Clean(worldDir))
	panels := []struct {
		title, xlabel string
		withSeed      bool
	}{
		{"Real coverage vs bandwidth: %s (%d real services)", "probes, seed included (log scale)", true},
		{"Real coverage after the seed: %s (%d real services)", "probes after the seed (log scale)", false},
	}
	c := vgimg.PngCanvas{Canvas: vgimg.New(16*vg.Inch, 6*vg.Inch)}
	tiles := draw.Tiles{Rows: 1, Cols: len(panels), PadX: vg.Inch / 4, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8,
		PadLeft: vg.Inch / 8, PadRight: vg.Inch / 8}
	dc := draw.New(c)
	for i, pn := range panels {
		p := plot.New()
		p.Title.Text = fmt.Sprintf(pn.title, name, w.RealServices())
		p.X.Label.Text = pn.xlabel
		p.Y.Label.Text = "fraction of real services found"
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Min, p.Y.Max = 0, 1
		p.Legend.Top = true
		p.Legend.Left = true
		p.Add(plotter.NewGrid())
		for _, cv := range curves {
			var offset uint64
			if pn.withSeed {
				offset = cv.SeedCost(w) // 0 for a policy whose curve counts its own seed
			}
			xys := logSpaced(cv, w.RealServices(), offset)
			if len(xys) < 2 {
				continue
			}
			l, err := plotter.NewLine(xys)
			if err != nil {
				return fmt.Errorf("plot %s: %w", cv.Name, err)
			}
			l.Color = palette[cv.Name]
			l.Width = vg.Points(2)
			if cv.Name == "oracle" || cv.Name == "exhaustive" {
				l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
			}
			p.Add(l)
			p.Legend.Add(cv.Name, l)
		}
		p.Draw(tiles.At(dc, i, 0))
	}
	_, err := c.WriteTo(wr)
	return err
}

// logSpaced samples a curve's real coverage at log-spaced probe counts from
// 1 to its end, interpolating inside segments: a segment that is straight in
// probes (a prefix sweep) is a curve on a log axis, and must be drawn as one.
// offset (the seed's probes, or 0) is added to every x.
func logSpaced(cv *Curve, total int, offset uint64) plotter.XYs {
	end := float64(cv.End().Probes)
	if end < 1 || total == 0 {
		return nil
	}
	const n = 600
	var xys plotter.XYs
	for i := 0; i <= n; i++ {
		x := math.Pow(end, float64(i)/n)
		xys = append(xys, plotter.XY{X: x + float64(offset), Y: cv.RealAt(uint64(x)) / float64(total)})
	}
	return xys
}
