package lora_test

// Files: SaveAdapter writes each file atomically (a full disk leaves the
// previous adapter loadable), LoadAdapter reads only safetensors and JSON
// (a pickle-only adapter is refused with a hint), adapter_config.json has
// a size limit, and a tensor of the wrong dtype is an error naming its key.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/internal/jsonfile"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/torch"
)

type failAfter struct {
	w io.Writer
	n int
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) <= f.n {
		f.n -= len(p)
		return f.w.Write(p)
	}
	k, _ := f.w.Write(p[:f.n])
	f.n = 0
	return k, syscall.ENOSPC
}

func TestSaveAdapterDiskFull(t *testing.T) {
	for _, c := range []struct {
		name, sub, file string
	}{
		{"default weights", "", lora.WeightsFile},
		{"default config", "", lora.ConfigFile},
		{"tenant weights", "tenant", lora.WeightsFile},
		{"tenant config", "tenant", lora.ConfigFile},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			savedNet(t, dir) // the previous adapters
			adir := filepath.Join(dir, c.sub)
			before := map[string][]byte{}
			for _, f := range []string{lora.WeightsFile, lora.ConfigFile} {
				b, err := os.ReadFile(filepath.Join(adir, f))
				require.NoError(t, err)
				before[f] = b
			}
			// Another net: other values, so that a partial write would show.
			n := newPeftNet(t, 12)
			adaptNet(t, n, "default", lora.Config{R: 4, Alpha: 16, TargetModules: allKinds, ModulesToSave: []string{"classifier"}})
			adaptNet(t, n, "tenant", lora.Config{R: 2, Alpha: 4, UseDoRA: true, TargetModules: []string{"q_proj", "conv"}})
			name := c.sub
			if name == "" {
				name = lora.DefaultAdapter
			}
			restore := atomicfile.SetTestHooks(atomicfile.Hooks{Wrap: func(path string, w io.Writer) io.Writer {
				if path != filepath.Join(adir, c.file) {
					return w
				}
				return &failAfter{w: w, n: 64}
			}})
			err := lora.SaveAdapter(n, dir, name)
			restore()
			require.True(t, errors.Is(err, syscall.ENOSPC), "%v", err)
			require.ErrorContains(t, err, filepath.Join(adir, c.file))
			require.ErrorContains(t, err, "no space left on device")
			got, rerr := os.ReadFile(filepath.Join(adir, c.file))
			require.NoError(t, rerr)
			require.True(t, bytes.Equal(before[c.file], got), "%s changed", c.file)
			ents, rerr := os.ReadDir(adir)
			require.NoError(t, rerr)
			for _, e := range ents {
				require.False(t, atomicfile.IsTemp(e.Name()), "temporary file %s left", e.Name())
			}
			if c.file == lora.WeightsFile {
				// The weights are written first: their failure leaves the
				// previous adapter whole, and it loads.
				require.True(t, bytes.Equal(before[lora.ConfigFile], mustRead(t, filepath.Join(adir, lora.ConfigFile))))
				require.NoError(t, lora.LoadAdapter(newPeftNet(t, 11), dir, name))
			}
		})
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func TestLoadAdapterPickleRefused(t *testing.T) {
	for _, files := range [][]string{{"adapter_model.bin"}, {"adapter_model.pt"}, {"adapter_model.pth", "training_args.bin"}} {
		t.Run(files[0], func(t *testing.T) {
			dir := t.TempDir()
			savedNet(t, dir)
			for _, sub := range []string{"", "tenant"} {
				require.NoError(t, os.Remove(filepath.Join(dir, sub, lora.WeightsFile)))
				for _, f := range files {
					require.NoError(t, os.WriteFile(filepath.Join(dir, sub, f), []byte("\x80\x02}q\x00."), 0o644))
				}
			}
			for _, name := range []string{lora.DefaultAdapter, "tenant"} {
				n := newPeftNet(t, 11)
				err := lora.LoadAdapter(n, dir, name)
				for _, s := range append([]string{"pickle", "never loads", "convert them to safetensors", lora.WeightsFile}, files...) {
					require.ErrorContains(t, err, s)
				}
				require.Empty(t, lora.Layers(n), "nothing injected")
			}
		})
	}
}

func TestLoadAdapterConfigSizeLimit(t *testing.T) {
	dir := t.TempDir()
	savedNet(t, dir)
	cfg := filepath.Join(dir, lora.ConfigFile)
	require.NoError(t, os.Truncate(cfg, 1<<40)) // sparse
	n := newPeftNet(t, 11)
	err := lora.LoadAdapter(n, dir, lora.DefaultAdapter)
	require.ErrorIs(t, err, jsonfile.ErrTooLarge)
	require.ErrorContains(t, err, cfg)
	require.ErrorContains(t, err, fmt.Sprintf("%d-byte limit", jsonfile.MaxConfigSize))
	require.Empty(t, lora.Layers(n))
}

// A tensor of a dtype that is not floating point where the model's is, or
// of another shape, is an error naming its key; nothing is loaded.
func TestLoadAdapterMismatchNamesKey(t *testing.T) {
	dir := t.TempDir()
	savedNet(t, dir)
	q := "base_model.model.model.layers.0.self_attn.q_proj."
	for _, c := range []struct {
		name string
		edit func(ts map[string]*torch.Tensor)
		want string
	}{
		{"int64", func(ts map[string]*torch.Tensor) {
			a := ts[q+"lora_A.weight"]
			ts[q+"lora_A.weight"] = a.To(torch.Int64)
			a.Close()
		}, q + "lora_A.weight: model float32, file int64"},
		{"bool", func(ts map[string]*torch.Tensor) {
			b := ts[q+"lora_B.weight"]
			ts[q+"lora_B.weight"] = b.To(torch.Bool)
			b.Close()
		}, q + "lora_B.weight: model float32, file bool"},
		{"shape", func(ts map[string]*torch.Tensor) {
			b := ts[q+"lora_B.weight"]
			ts[q+"lora_B.weight"] = b.T().Contiguous()
			b.Close()
		}, q + "lora_B.weight: model ["},
	} {
		t.Run(c.name, func(t *testing.T) {
			bad := rewrite(t, dir, func(ts map[string]*torch.Tensor, _ map[string]any) { c.edit(ts) })
			n := newPeftNet(t, 11)
			snap := snapshot(t, n)
			requireErr(t, func() error { return lora.LoadAdapter(n, bad, lora.DefaultAdapter) }, "nothing loaded", c.want)
			require.Empty(t, lora.Layers(n))
			require.Equal(t, snap, snapshot(t, n))
		})
	}
	// Floating-point dtypes convert, as in PEFT: a bf16 adapter loads.
	half := rewrite(t, dir, func(ts map[string]*torch.Tensor, _ map[string]any) {
		for k, v := range ts {
			ts[k] = v.To(torch.BFloat16)
			v.Close()
		}
	})
	require.NoError(t, lora.LoadAdapter(newPeftNet(t, 11), half, lora.DefaultAdapter))
}
