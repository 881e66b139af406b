package torch_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/torch"
)

// TestSetDataKeepsIdentity: SetData changes a tensor in place, like tch's
// set_data (PyTorch's `p.data = ...`), so every holder of the *Tensor and
// every alias handle sees the new dtype and values: an optimizer or an
// adapter that holds a parameter keeps holding the moved parameter.
func TestSetDataKeepsIdentity(t *testing.T) {
	s := testScope(t)
	p := s.Own(torch.FromSlice([]float32{1.5, -2, 0.25, 8}, 2, 2))
	require.NoError(t, p.SetRequiresGrad(true))
	q := p          // another holder of the same *Tensor
	al := p.Alias() // a second handle to the same libtorch tensor
	require.NoError(t, s.Err())

	require.NoError(t, p.SetData(p.To(torch.Float64)))
	assert.Same(t, p, q)
	assert.Equal(t, torch.Float64, q.DType())
	assert.Equal(t, torch.Float64, al.DType(), "an alias handle sees the new data")
	assert.Equal(t, []float64{1.5, -2, 0.25, 8}, vals[float64](t, al))
	assert.True(t, p.RequiresGrad(), "SetData keeps requires_grad")

	// The parameter still trains: its gradient has the new dtype.
	require.NoError(t, p.Mul(p).Sum().Backward())
	g := p.Grad()
	require.NotNil(t, g)
	assert.Equal(t, torch.Float64, g.DType())
	assert.Equal(t, []float64{3, -4, 0.5, 16}, vals[float64](t, g))

	// The shape may change too; src is not consumed.
	src := torch.Zeros([]int64{3}, torch.In(s))
	require.NoError(t, p.ClearGrad())
	require.NoError(t, al.SetData(src))
	assert.Equal(t, []int64{3}, p.Shape(), "SetData through the alias changed p")
	assert.Equal(t, torch.Float32, p.DType())
	assert.False(t, src.Closed())

	// Errors leave p as it was and name the argument.
	var nilT *torch.Tensor
	err := p.SetData(nilT)
	e, isErr := torch.AsError(err)
	require.True(t, isErr, "%v", err)
	assert.Equal(t, "SetData", e.Op)
	assert.Equal(t, "src", e.Arg)
	bad := p.Reshape(5)
	assert.True(t, p.SetData(bad) == bad.Err(), "a failed src passes its error on")
	assert.Equal(t, []int64{3}, p.Shape())
}

// TestRNGStateRoundTrip: restoring a saved generator state replays the same
// draws bit for bit.
func TestRNGStateRoundTrip(t *testing.T) {
	s := testScope(t)
	require.NoError(t, torch.ManualSeed(1234))
	state := s.Own(torch.RNGState(torch.CPU))
	require.NoError(t, state.Err())
	assert.Equal(t, torch.Uint8, state.DType())
	assert.Equal(t, 1, state.Dim())
	saved := vals[uint8](t, state)

	a := torch.Randn([]int64{64}, torch.In(s))
	a2 := torch.Rand([]int64{7}, torch.In(s))
	assert.Equal(t, saved, vals[uint8](t, state), "the state is a copy, not a view of the generator")
	assert.NotEqual(t, saved, vals[uint8](t, s.Own(torch.RNGState(torch.CPU))), "drawing advanced the generator")

	require.NoError(t, torch.SetRNGState(torch.CPU, state))
	b := torch.Randn([]int64{64}, torch.In(s))
	b2 := torch.Rand([]int64{7}, torch.In(s))
	reftest.RequireBitwise(t, "randn after SetRNGState", b, a)
	reftest.RequireBitwise(t, "rand after SetRNGState", b2, a2)

	// The same state as ManualSeed(1234) gives.
	require.NoError(t, torch.ManualSeed(1234))
	assert.Equal(t, saved, vals[uint8](t, s.Own(torch.RNGState(torch.CPU))))
}

// TestRNGStateBad: a state of the wrong size or dtype is refused, and the
// generator is left as it was.
func TestRNGStateBad(t *testing.T) {
	s := testScope(t)
	before := vals[uint8](t, s.Own(torch.RNGState(torch.CPU)))
	n := int64(len(before))

	for _, c := range []struct {
		name  string
		state *torch.Tensor
		msg   string
	}{
		{"too short", torch.Zeros([]int64{10}, torch.WithDType(torch.Uint8), torch.In(s)), "bytes"},
		{"too long", torch.Zeros([]int64{n + 1}, torch.WithDType(torch.Uint8), torch.In(s)), "bytes"},
		{"float32", torch.Zeros([]int64{n}, torch.In(s)), "uint8"},
		{"float32 of the state's byte size", torch.Zeros([]int64{n / 4}, torch.In(s)), "uint8"},
		{"int64", torch.Zeros([]int64{n}, torch.WithDType(torch.Int64), torch.In(s)), "uint8"},
	} {
		err := torch.SetRNGState(torch.CPU, c.state)
		require.Errorf(t, err, c.name)
		assert.Equal(t, "SetRNGState", errOp(err), c.name)
		assert.Contains(t, err.Error(), c.msg, c.name)
		assert.NotContains(t, err.Error(), ".cpp:", c.name)
		assert.Equal(t, before, vals[uint8](t, s.Own(torch.RNGState(torch.CPU))), "%s: the generator changed", c.name)
	}
	err := torch.SetRNGState(torch.CPU, nil)
	e, isErr := torch.AsError(err)
	require.True(t, isErr, "%v", err)
	assert.Equal(t, "state", e.Arg)
	assert.Equal(t, "nil tensor", e.Msg)
}

// captureHandler is a slog.Handler that keeps the records it is given.
type captureHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}

func (h *captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *captureHandler) WithGroup(string) slog.Handler      { return h }

// find returns the first record whose message contains sub, with its
// attributes.
func (h *captureHandler) find(sub string) (slog.Record, map[string]slog.Value, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if strings.Contains(r.Message, sub) {
			attrs := map[string]slog.Value{}
			r.Attrs(func(a slog.Attr) bool {
				attrs[a.Key] = a.Value
				return true
			})
			return r, attrs, true
		}
	}
	return slog.Record{}, nil, false
}

// TestWarningsReachSlog: libtorch's TORCH_WARN messages arrive as slog
// records (level Warn, source=libtorch) instead of lines on stderr.
func TestWarningsReachSlog(t *testing.T) {
	h := &captureHandler{}
	torch.SetWarningLogger(slog.New(h))
	t.Cleanup(func() { torch.SetWarningLogger(nil) })
	s := testScope(t)

	// An out= op given an output of the wrong (non-empty) shape resizes it
	// and warns (at::native::resize_output, in 1.13 and 2.x alike).
	x := torch.Ones([]int64{2, 2}, torch.In(s))
	out := torch.Zeros([]int64{3}, torch.In(s))
	res, err := torch.Call("aten::neg", "out", x, out)
	require.NoError(t, err)
	require.Len(t, res, 1)
	assert.Equal(t, []int64{2, 2}, out.Shape(), "neg.out resized its output")
	assert.Equal(t, []float32{-1, -1, -1, -1}, vals[float32](t, out))

	r, attrs, found := h.find("resized")
	require.True(t, found, "no slog record for libtorch's resize warning; got %d records", len(h.recs))
	t.Logf("record: %s %q %v", r.Level, r.Message, attrs)
	assert.Equal(t, slog.LevelWarn, r.Level)
	assert.Equal(t, "libtorch", attrs["source"].String())
	assert.NotContains(t, r.Message, ".cpp")

	// libtorch 1.13 also warns about uint8 masks, through the dispatcher
	// (golora's own MaskedFill refuses them before libtorch sees them).
	if strings.HasPrefix(torch.Version(), "1.") {
		u8 := torch.Ones([]int64{2, 2}, torch.WithDType(torch.Uint8), torch.In(s))
		_, err := torch.Call("aten::masked_fill", "Scalar", x, u8, 7.0)
		require.NoError(t, err)
		_, attrs, found := h.find("uint8")
		require.True(t, found, "no slog record for the uint8 mask warning")
		assert.Equal(t, "libtorch", attrs["source"].String())
	}

	// Back to slog.Default: records no longer reach h.
	torch.SetWarningLogger(nil)
	before := len(h.recs)
	_, err = torch.Call("aten::neg", "out", x, torch.Zeros([]int64{5}, torch.In(s)))
	require.NoError(t, err)
	assert.Len(t, h.recs, before)
}
