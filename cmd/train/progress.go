package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/golora/golora/train"
)

// progress shows the run: a progress bar (step, loss, learning rate,
// tokens/s, ETA) when stdout is a terminal, else a log line every few
// steps; evaluations always get a line.
type progress struct {
	w        io.Writer
	log      *slog.Logger
	bar      *progressbar.ProgressBar
	every    int64
	tokens   float64
	seconds  float64
	lastLoss float64
}

func newProgress(w io.Writer, log *slog.Logger, steps, start int64) *progress {
	p := &progress{w: w, every: max(1, steps/25)}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(steps,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("train"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionShowDescriptionAtLineEnd(),
		)
		_ = p.bar.Set64(start)
		return p
	}
	// Not a terminal: log lines on stdout, without timestamps (the run's
	// figures, not its clock, are what a log of it is read for).
	p.log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	return p
}

func (p *progress) step(m train.StepMetrics) {
	p.tokens += m.TokPerS * m.Seconds
	p.seconds += m.Seconds
	p.lastLoss = m.Loss
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("loss %.4f lr %.2e %.0f tok/s", m.Loss, m.LR, m.TokPerS))
		_ = p.bar.Set64(m.Step)
		return
	}
	if m.Step%p.every == 0 || m.Step == m.Steps || m.Step == 1 {
		p.log.Info("step", "step", fmt.Sprintf("%d/%d", m.Step, m.Steps), "loss", round4(m.Loss),
			"lr", fmt.Sprintf("%.2e", m.LR), "tok/s", int64(m.TokPerS), "epoch", fmt.Sprintf("%.2f", m.Epoch))
	}
}

func (p *progress) eval(m train.EvalMetrics) {
	if p.bar != nil {
		_ = p.bar.Clear()
		fmt.Fprintf(p.w, "step %d: validation loss %.4f (perplexity %.2f)\n", m.Step, m.Loss, m.Perplexity)
		return
	}
	p.log.Info("eval", "step", m.Step, "val_loss", round4(m.Loss), "val_ppl", fmt.Sprintf("%.2f", m.Perplexity))
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
	}
}

// tokPerS is the mean throughput of the steps seen.
func (p *progress) tokPerS() float64 {
	if p.seconds == 0 {
		return 0
	}
	return p.tokens / p.seconds
}

func round4(v float64) string { return fmt.Sprintf("%.4f", v) }
