package torch_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/torch"
)

// Finding: LoadSafetensors("/dev/zero") read forever, and a huge file with
// a bad header was read whole before the header was checked.
func TestLoadSafetensorsRefusesBeforeReading(t *testing.T) {
	before := torch.LiveTensors()
	start := time.Now()
	_, _, err := torch.LoadSafetensors("/dev/zero")
	require.Error(t, err)
	require.Contains(t, err.Error(), "/dev/zero")

	// A sparse 4 GiB file whose header length is absurd: refused at once.
	p := filepath.Join(t.TempDir(), "big.safetensors")
	f, err := os.Create(p)
	require.NoError(t, err)
	_, err = f.Write([]byte{0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0}) // ~2 GB header
	require.NoError(t, err)
	require.NoError(t, f.Truncate(4<<30))
	require.NoError(t, f.Close())
	_, _, err = torch.LoadSafetensors(p)
	require.Error(t, err)
	require.Less(t, time.Since(start), 2*time.Second, "refusal must not read the data")
	require.Equal(t, before, torch.LiveTensors())
}

// Finding: BOOL bytes other than 0 and 1 loaded, and ToSlice[bool] returned
// "bools" that counted 258 out of 4.
func TestLoadSafetensorsBadBool(t *testing.T) {
	header := `{"m":{"dtype":"BOOL","shape":[4],"data_offsets":[0,4]}}`
	buf := []byte{byte(len(header)), 0, 0, 0, 0, 0, 0, 0}
	buf = append(buf, header...)
	buf = append(buf, 1, 0, 2, 1)
	p := filepath.Join(t.TempDir(), "bool.safetensors")
	require.NoError(t, os.WriteFile(p, buf, 0o644))
	before := torch.LiveTensors()
	_, _, err := torch.LoadSafetensors(p)
	require.Error(t, err)
	require.Contains(t, err.Error(), `"m"`)
	require.Equal(t, before, torch.LiveTensors())
}

// Sharded checkpoints load (index file or directory) and round-trip; the
// dtype, the device and a name filter are applied while loading.
func TestLoadSafetensorsShardedAndOptions(t *testing.T) {
	dir := t.TempDir()
	w := torch.FromSlice([]float32{1, 2, 3, 4, 5, 6}, 2, 3).Must()
	b := torch.FromSlice([]float32{0.5, -0.5}).Must()
	ids := torch.FromSlice([]int64{0, 1, 2}).Must()
	defer torch.CloseAll(w, b, ids)
	in := map[string]*torch.Tensor{"layer.weight": w, "layer.bias": b, "position_ids": ids}
	require.NoError(t, torch.SaveSafetensorsSharded(dir, "model", in, map[string]string{"format": "pt"}, 24))

	for _, path := range []string{dir, filepath.Join(dir, "model.safetensors.index.json")} {
		got, _, err := torch.LoadSafetensors(path, torch.LoadAs(torch.Float64))
		require.NoError(t, err, path)
		require.Len(t, got, 3)
		require.Equal(t, torch.Float64, got["layer.weight"].DType())
		require.Equal(t, torch.Int64, got["position_ids"].DType(), "integer tensors keep their dtype")
		require.Equal(t, []float64{1, 2, 3, 4, 5, 6}, torch.Must(torch.ToSlice[float64](got["layer.weight"])))
		require.Equal(t, []int64{0, 1, 2}, torch.Must(torch.ToSlice[int64](got["position_ids"])))
		torch.CloseMap(got)
	}

	only, _, err := torch.LoadSafetensors(dir, torch.LoadOnly(func(n string) bool { return strings.HasPrefix(n, "layer.") }))
	require.NoError(t, err)
	require.Len(t, only, 2)
	torch.CloseMap(only)

	_, _, err = torch.LoadSafetensors(dir, torch.LoadAs(torch.Int64))
	require.ErrorContains(t, err, "floating-point")
	if !torch.CUDAIsAvailable() {
		_, _, err = torch.LoadSafetensors(dir, torch.LoadTo(torch.CUDA(0)))
		require.ErrorContains(t, err, "CUDA")
	}
}

// A loaded tensor owns its memory: it stays valid after the file is gone
// and changing it does not change the file.
func TestLoadSafetensorsOwnsMemory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "w.safetensors")
	w := torch.FromSlice([]float32{1, 2, 3}).Must()
	defer w.Close()
	require.NoError(t, torch.SaveSafetensors(p, map[string]*torch.Tensor{"w": w}, nil))
	got, _, err := torch.LoadSafetensors(p)
	require.NoError(t, err)
	defer torch.CloseMap(got)
	require.NoError(t, os.Remove(p))
	got["w"].MulScalar_(2)
	require.Equal(t, []float32{2, 4, 6}, torch.Must(torch.ToSlice[float32](got["w"])))
}
