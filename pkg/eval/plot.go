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
}

// plotCurves draws coverage against probes after the seed, log-scaled probes.
func plotCurves(wr io.Writer, w *World, curves []*Curve, worldDir string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Coverage vs probes: %s (%d services)", filepath.Base(filepath.Clean(worldDir)), w.Services())
	p.X.Label.Text = "probes after the seed (log scale)"
	p.Y.Label.Text = "fraction of services found"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	for _, cv := range curves {
		xys := logSpaced(cv, w.Services())
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
	c := vgimg.PngCanvas{Canvas: vgimg.New(9*vg.Inch, 6*vg.Inch)}
	p.Draw(draw.New(c))
	_, err := c.WriteTo(wr)
	return err
}

// logSpaced samples a curve at log-spaced probe counts from 1 to its end,
// interpolating inside segments: a segment that is straight in probes (a
// prefix sweep) is a curve on a log axis, and must be drawn as one.
func logSpaced(cv *Curve, total int) plotter.XYs {
	end := float64(cv.End().Probes)
	if end < 1 {
		return nil
	}
	const n = 600
	var xys plotter.XYs
	for i := 0; i <= n; i++ {
		x := math.Pow(end, float64(i)/n)
		xys = append(xys, plotter.XY{X: x, Y: cv.FoundAt(uint64(x)) / float64(total)})
	}
	return xys
}
