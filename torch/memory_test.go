package torch_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/torch"
)

// Leak tests: every handle an op returns is counted by LiveTensors until it
// is closed. These loops close everything they make, so the count must come
// back to where it started.

func TestNoLeakOpsLoop(t *testing.T) {
	start := reftest.SettledLiveTensors()
	a := try(torch.Randn([]int64{8, 8})).must(t)
	b := try(torch.Randn([]int64{8, 8})).must(t)

	const iters = 10_000
	for i := 0; i < iters; i++ {
		s, err := a.Add(b)
		require.NoError(t, err)
		m, err := s.MatMul(b)
		require.NoError(t, err)
		r, err := m.Relu()
		require.NoError(t, err)
		// An op that fails must not leave a handle behind either.
		if i%1000 == 0 {
			bad, err := r.Reshape(3, 5)
			require.Error(t, err)
			require.Nil(t, bad)
		}
		torch.CloseAll(s, m, r)
	}
	torch.CloseAll(a, b)
	assert.Equal(t, start, torch.LiveTensors(), "LiveTensors after %d add/matmul/relu chains", iters)
}

func TestNoLeakBackwardLoop(t *testing.T) {
	start := reftest.SettledLiveTensors()
	w := try(torch.Randn([]int64{16, 8})).must(t)
	x := try(torch.Randn([]int64{4, 8})).must(t)
	require.NoError(t, w.SetRequiresGrad(true))

	const iters = 1_000
	for i := 0; i < iters; i++ {
		y, err := torch.Linear(x, w, nil)
		require.NoError(t, err)
		a, err := y.Tanh()
		require.NoError(t, err)
		l, err := a.Mean()
		require.NoError(t, err)
		require.NoError(t, l.Backward())
		g, err := w.Grad()
		require.NoError(t, err)
		require.NotNil(t, g)
		require.NoError(t, w.AddScaled_(g, -0.01))
		require.NoError(t, w.ZeroGrad())
		v, idx, err := a.MaxDim(1, false)
		require.NoError(t, err)
		torch.CloseAll(y, a, l, g, v, idx)
	}
	require.NoError(t, w.ClearGrad())
	torch.CloseAll(w, x)
	assert.Equal(t, start, torch.LiveTensors(), "LiveTensors after %d forward/backward/step loops", iters)
}

func TestNoLeakBadSafetensors(t *testing.T) {
	dir := t.TempDir()

	// A file that passes the format checks but holds a dtype golora does
	// not support (I8) among several good tensors: loading must fail after
	// some tensors were already made, and free them.
	header := map[string]any{}
	var data []byte
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		header[name] = map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{len(data), len(data) + 8}}
		data = append(data, make([]byte, 8)...)
	}
	header["z_int8"] = map[string]any{"dtype": "I8", "shape": []int{4}, "data_offsets": []int{len(data), len(data) + 4}}
	data = append(data, 1, 2, 3, 4)
	unsupported := writeFile(t, "unsupported.safetensors", rawSafetensors(t, header, data))

	truncated := filepath.Join(dir, "truncated.safetensors")
	x := try(torch.Ones([]int64{4, 4})).must(t)
	require.NoError(t, torch.SaveSafetensors(truncated, map[string]*torch.Tensor{"x": x}, nil))
	require.NoError(t, x.Close())
	good := try(os.ReadFile(truncated)).must(t)
	truncated = writeFile(t, "truncated.safetensors", good[:len(good)-1])

	huge := writeFile(t, "huge.safetensors", binary.LittleEndian.AppendUint64(nil, 10_000_000_000))

	start := reftest.SettledLiveTensors()
	for i := 0; i < 20; i++ {
		for _, p := range []string{unsupported, truncated, huge} {
			ts, _, err := torch.LoadSafetensors(p)
			require.Error(t, err, p)
			require.Nil(t, ts)
		}
	}
	_, _, err := torch.LoadSafetensors(unsupported)
	assert.ErrorContains(t, err, "dtype I8 is not supported")
	assert.Equal(t, start, torch.LiveTensors(), "LiveTensors after failed loads")
}
