package main

import (
	"fmt"
	"image/color"
	"io"

	"github.com/golora/golora/internal/atomicfile"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// plotLoss draws the training loss per step and the validation loss at
// each evaluation to a PNG file at path, written atomically.
func plotLoss(path string, h history, mode string) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("cmd/train: %s", mode)
	p.X.Label.Text = "step"
	p.Y.Label.Text = "loss (nats per token)"
	p.Add(plotter.NewGrid())
	if len(h.Steps) > 0 {
		pts := make(plotter.XYs, len(h.Steps))
		for i, m := range h.Steps {
			pts[i] = plotter.XY{X: float64(m.Step), Y: m.Loss}
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = color.RGBA{R: 31, G: 119, B: 180, A: 255}
		p.Add(l)
		p.Legend.Add("train", l)
	}
	if len(h.Evals) > 0 {
		pts := make(plotter.XYs, len(h.Evals))
		for i, m := range h.Evals {
			pts[i] = plotter.XY{X: float64(m.Step), Y: m.Loss}
		}
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return err
		}
		c := color.RGBA{R: 214, G: 39, B: 40, A: 255}
		l.Color, s.Color = c, c
		s.Shape = draw.CircleGlyph{}
		p.Add(l, s)
		p.Legend.Add("validation", l, s)
	}
	p.Legend.Top = true
	wt, err := p.WriterTo(7*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		_, err := wt.WriteTo(w)
		return err
	})
}
