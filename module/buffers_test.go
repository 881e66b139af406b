package module_test

// Tests of buffers: persistent ones in the state dict, non-persistent ones
// out of it, neither among the parameters; To moves both.

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// bertEmb is BERT's embeddings (the Python BertEmb of gen_module.py), with
// the persistent int64 buffer position_ids, plus a non-persistent cos
// cache of the kind RoPE keeps.
type bertEmb struct {
	module.Base
	Words, Positions *module.Embedding
	Norm             *module.LayerNorm
	PositionIDs      *torch.Tensor // persistent, int64 (1, 6)
	Cos              *torch.Tensor // non-persistent, float (6, 2)
}

func newBertEmb(t *testing.T) *bertEmb {
	t.Helper()
	m := &bertEmb{
		Words:       torch.Must(module.NewEmbedding(12, 4)),
		Positions:   torch.Must(module.NewEmbedding(6, 4)),
		Norm:        torch.Must(module.NewLayerNorm([]int64{4})),
		PositionIDs: torch.Zeros([]int64{1, 6}, torch.WithDType(torch.Int64)).Must(),
	}
	m.Cos = torch.Must(torch.WithScope(func(s *torch.Scope) *torch.Tensor {
		return torch.Arange(0, 12, 1, torch.In(s)).View(6, 2).Cos()
	}))
	module.Child(&m.Base, "word_embeddings", &m.Words)
	module.Child(&m.Base, "position_embeddings", &m.Positions)
	module.Child(&m.Base, "LayerNorm", &m.Norm)
	m.Buffer("position_ids", &m.PositionIDs, true)
	m.Buffer("cos_cached", &m.Cos, false)
	return m
}

// Forward is LayerNorm(words(ids) + positions(position_ids[:, :seq])).
func (m *bertEmb) Forward(ids *torch.Tensor) *torch.Tensor {
	pos := m.PositionIDs.Narrow(1, 0, ids.SizeOf(1))
	return m.Norm.Forward(m.Words.Forward(ids).Add(m.Positions.Forward(pos)))
}

func TestBuffers(t *testing.T) {
	m := newBertEmb(t)
	defer module.Close(m)

	// Buffers are not parameters: not listed, not counted, not trainable.
	require.Equal(t, []string{"word_embeddings.weight", "position_embeddings.weight", "LayerNorm.weight", "LayerNorm.bias"}, names(m))
	total, _ := module.Count(m)
	require.Equal(t, int64(12*4+6*4+4+4), total)
	var bufs []string
	for _, b := range module.NamedBuffers(m) {
		bufs = append(bufs, b.Name)
		require.False(t, b.Tensor.RequiresGrad(), b.Name)
	}
	require.Equal(t, []string{"position_ids", "cos_cached"}, bufs)
	require.True(t, module.NamedBuffers(m)[0].Persistent)
	require.False(t, module.NamedBuffers(m)[1].Persistent)
	require.NoError(t, module.Unfreeze(m))
	require.False(t, m.PositionIDs.RequiresGrad(), "Unfreeze leaves buffers alone")

	// The state dict holds the persistent buffer, not the cache.
	sd := module.StateDict(m)
	require.Same(t, m.PositionIDs, sd["position_ids"])
	require.NotContains(t, sd, "cos_cached")
	require.Len(t, sd, 5)

	// A buffer registered with requires_grad loses it.
	v := torch.Ones([]int64{2}).Must()
	require.NoError(t, v.SetRequiresGrad(true))
	other := &bertEmb{}
	other.Buffer("v", &v, true)
	require.False(t, v.RequiresGrad())
	require.NoError(t, v.Close())

	// To moves both buffers; a DType target converts the float cache and
	// leaves the int64 ids alone, as PyTorch's module.to does.
	ids, cos := m.PositionIDs, m.Cos
	require.NoError(t, module.To(m, torch.Float64))
	require.Same(t, ids, m.PositionIDs)
	require.Same(t, cos, m.Cos)
	require.Equal(t, torch.Int64, m.PositionIDs.DType())
	require.Equal(t, torch.Float64, m.Cos.DType())
	require.Equal(t, torch.Float64, m.Norm.Weight.DType())
	require.NoError(t, module.To(m, torch.CPU))
	require.Equal(t, torch.CPU, m.PositionIDs.Device())
}

// A checkpoint's buffer key (BERT's int64 embeddings.position_ids) loads
// into a persistent buffer, and the module then computes what PyTorch
// computed. (The old module had no buffers: the key was unexpected.)
func TestLoadPersistentBuffer(t *testing.T) {
	r := loadRefs(t)
	m := newBertEmb(t)
	defer module.Close(m)
	require.Equal(t, make([]int64, 6), torch.Must(torch.ToSlice[int64](m.PositionIDs)))
	cos := reftest.Float64s(t, m.Cos)

	require.NoError(t, module.Load(m, bertPath))
	require.Equal(t, []int64{0, 1, 2, 3, 4, 5}, torch.Must(torch.ToSlice[int64](m.PositionIDs)))
	require.Equal(t, cos, reftest.Float64s(t, m.Cos), "the non-persistent cache is not loaded")
	s := newScope(t)
	requireClose(t, "BERT embeddings", m.Forward(own(s, r.Tensor(t, "bert.ids"))), r.Tensor(t, "bert.out"))

	// Save writes the persistent buffer and leaves the cache out.
	path := filepath.Join(t.TempDir(), "bert.safetensors")
	require.NoError(t, module.Save(m, path, nil))
	file, _, err := torch.LoadSafetensors(path)
	require.NoError(t, err)
	defer torch.CloseMap(file)
	require.Equal(t, []string{"LayerNorm.bias", "LayerNorm.weight", "position_embeddings.weight", "position_ids", "word_embeddings.weight"}, sortedKeys(file))
	require.Equal(t, torch.Int64, file["position_ids"].DType())

	// Strict loading requires the buffer; a float tensor cannot fill it.
	sd := map[string]*torch.Tensor{}
	for k, v := range file {
		sd[k] = v
	}
	delete(sd, "position_ids")
	var se *module.StateDictError
	require.True(t, errors.As(module.LoadStateDict(m, sd), &se))
	require.Equal(t, []string{"position_ids"}, se.Missing)
	require.NoError(t, module.LoadStateDictPartial(m, sd))
	sd["position_ids"] = s.Own(torch.Zeros([]int64{1, 6}))
	require.True(t, errors.As(module.LoadStateDict(m, sd), &se))
	require.Equal(t, []string{"position_ids: model int64, state dict float32"}, se.Mistyped)
}

// A checkpoint key for a non-persistent buffer is unexpected unless the
// load is told to skip it (SkipNonPersistent, or IgnoreKeys).
func TestNonPersistentBufferKey(t *testing.T) {
	m := newBertEmb(t)
	defer module.Close(m)
	s := newScope(t)
	sd := map[string]*torch.Tensor{}
	for k, v := range module.StateDict(m) {
		sd[k] = v
	}
	sd["cos_cached"] = s.Own(torch.Zeros([]int64{6, 2}))
	cos := reftest.Float64s(t, m.Cos)

	err := module.LoadStateDict(m, sd)
	var se *module.StateDictError
	require.True(t, errors.As(err, &se), "%v", err)
	require.Equal(t, []string{"cos_cached"}, se.Unexpected)

	require.NoError(t, module.LoadStateDict(m, sd, module.SkipNonPersistent()))
	require.Equal(t, cos, reftest.Float64s(t, m.Cos), "the key is ignored, not loaded")
	require.NoError(t, module.LoadStateDict(m, sd, module.IgnoreKeys("cos_*")))
	require.Equal(t, cos, reftest.Float64s(t, m.Cos))

	// SkipNonPersistent does not excuse keys that name nothing.
	sd["nothing"] = sd["cos_cached"]
	require.True(t, errors.As(module.LoadStateDict(m, sd, module.SkipNonPersistent()), &se))
	require.Equal(t, []string{"nothing"}, se.Unexpected)
}
