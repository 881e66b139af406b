package hf_test

// Files: only safetensors and JSON are loaded (pickles are refused with a
// hint), config.json has a size limit, shard names cannot leave the
// checkpoint's directory, a dtype or shape that disagrees with the model
// is an error naming the key, and a merged model's Save is atomic.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/atomicfile"
	"github.com/golora/golora/internal/jsonfile"
	"github.com/golora/golora/models"
	"github.com/golora/golora/models/hf"
	"github.com/golora/golora/models/llama"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

func tinyLlama(t *testing.T) *llama.Model {
	t.Helper()
	require.NoError(t, torch.ManualSeed(3))
	m, err := llama.New(llama.Config{
		ModelType: "llama", VocabSize: 16, HiddenSize: 8, IntermediateSize: 12,
		NumHiddenLayers: 1, NumAttentionHeads: 2, NumKeyValueHeads: 1,
		MaxPositionEmbeddings: 32, RMSNormEps: 1e-5, HiddenAct: "silu",
		Rope: llama.Rope{Type: "default", Theta: 10000}, InitializerRange: 0.3,
	})
	require.NoError(t, err)
	t.Cleanup(m.Close)
	return m
}

func TestPickleCheckpointsRefused(t *testing.T) {
	for _, files := range [][]string{
		{"pytorch_model.bin"},
		{"pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json"},
		{"model.pt"},
		{"weights.pth"},
		{"adapter_model.bin"},
	} {
		t.Run(files[0], func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, tinyLlama(t).Save(dir))
			require.NoError(t, os.Remove(filepath.Join(dir, "model.safetensors")))
			for _, f := range files {
				writeFile(t, filepath.Join(dir, f), "\x80\x02}q\x00.") // a pickle
			}
			_, err := hf.CheckpointFile(dir)
			requirePickleErr(t, err, files)
			_, err = models.Load(dir)
			requirePickleErr(t, err, files)
			_, err = llama.Load(dir)
			requirePickleErr(t, err, files)
		})
	}
}

func requirePickleErr(t *testing.T, err error, files []string) {
	t.Helper()
	require.Error(t, err)
	for _, s := range append([]string{"pickle", "never loads", "convert them to safetensors"}, files...) {
		require.ErrorContains(t, err, s)
	}
}

// config.json over the limit is refused unread (a sparse 1 TB file here),
// with an error naming the file and the limit.
func TestConfigSizeLimit(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, tinyLlama(t).Save(dir))
	cfg := filepath.Join(dir, hf.ConfigFile)
	require.NoError(t, os.Truncate(cfg, 1<<40))
	for _, load := range []func() error{
		func() error { _, err := hf.ReadConfig(dir); return err },
		func() error { _, err := models.Load(dir); return err },
	} {
		err := load()
		require.ErrorIs(t, err, jsonfile.ErrTooLarge)
		require.ErrorContains(t, err, cfg)
		require.ErrorContains(t, err, fmt.Sprintf("%d-byte limit", jsonfile.MaxConfigSize))
	}
}

// Shard names that leave the checkpoint's directory are refused, even
// when the file they name exists and is a valid shard.
func TestShardNamesEscape(t *testing.T) {
	root := t.TempDir()
	src := ckpt(false)
	defer torch.CloseMap(src)
	outside := filepath.Join(root, "model.safetensors")
	require.NoError(t, torch.SaveSafetensors(outside, src, nil))
	for _, shard := range []string{"../model.safetensors", outside, "sub/../../model.safetensors", ".."} {
		t.Run(shard, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ckpt")
			require.NoError(t, os.MkdirAll(dir, 0o755))
			var wm []string
			for k := range src {
				wm = append(wm, fmt.Sprintf("%q: %q", k, shard))
			}
			writeFile(t, filepath.Join(dir, "model.safetensors.index.json"), `{"weight_map": {`+strings.Join(wm, ", ")+`}}`)
			m := newTinyLM(t)
			defer module.Close(m)
			err := hf.LoadWeights(dir, m, hf.NewOptions())
			require.ErrorContains(t, err, fmt.Sprintf("shard %q", shard))
		})
	}
}

// A tensor whose dtype kind or shape disagrees with the model's is an
// error naming its key, and nothing is loaded.
func TestLoadWeightsMismatchNamesKey(t *testing.T) {
	for _, c := range []struct {
		key  string
		t    *torch.Tensor
		want string
	}{
		{"model.proj.weight", torch.Zeros([]int64{3, 3}, torch.WithDType(torch.Int64)), "dtype mismatch: model.proj.weight: model float32, checkpoint I64"},
		{"model.proj.bias", torch.Zeros([]int64{3}, torch.WithDType(torch.Bool)), "dtype mismatch: model.proj.bias: model float32, checkpoint BOOL"},
		{"model.position_ids", torch.Zeros([]int64{4}), "dtype mismatch: model.position_ids: model int64, checkpoint F32"},
		{"model.embed_tokens.weight", torch.Zeros([]int64{3, 5}), "shape mismatch: model.embed_tokens.weight: model [5 3], checkpoint [3 5]"},
		{"model.proj.bias", torch.Zeros([]int64{3, 1}), "shape mismatch: model.proj.bias: model [3], checkpoint [3 1]"},
	} {
		t.Run(c.key, func(t *testing.T) {
			src := ckpt(false)
			defer torch.CloseMap(src)
			src[c.key].Close()
			src[c.key] = c.t
			dir := saveCheckpoint(t, src, true)
			m := newTinyLM(t)
			defer module.Close(m)
			before := values(t, m.Model.Proj.(*module.Linear).Weight)
			err := hf.LoadWeights(dir, m, hf.NewOptions())
			require.ErrorContains(t, err, c.want)
			require.Equal(t, before, values(t, m.Model.Proj.(*module.Linear).Weight), "nothing loaded")
		})
	}
}

// llama's Save (the merged model cmd/train writes) is atomic file by
// file: a full disk while writing either file leaves that file as it was.
func TestSaveDiskFull(t *testing.T) {
	for _, fail := range []string{"model.safetensors", "config.json"} {
		t.Run(fail, func(t *testing.T) {
			dir := t.TempDir()
			old := tinyLlama(t)
			require.NoError(t, old.Save(dir))
			before := map[string][]byte{}
			for _, f := range []string{"model.safetensors", "config.json"} {
				b, err := os.ReadFile(filepath.Join(dir, f))
				require.NoError(t, err)
				before[f] = b
			}
			require.NoError(t, torch.ManualSeed(99))
			m2, err := llama.New(old.Cfg)
			require.NoError(t, err)
			defer m2.Close()
			m2.Cfg.RMSNormEps = 1e-6 // a config.json that differs too
			restore := atomicfile.SetTestHooks(atomicfile.Hooks{Wrap: func(path string, w io.Writer) io.Writer {
				if filepath.Base(path) != fail {
					return w
				}
				return writerFunc(func([]byte) (int, error) { return 0, syscall.ENOSPC })
			}})
			err = m2.Save(dir)
			restore()
			require.True(t, errors.Is(err, syscall.ENOSPC), "%v", err)
			require.ErrorContains(t, err, filepath.Join(dir, fail))
			got, rerr := os.ReadFile(filepath.Join(dir, fail))
			require.NoError(t, rerr)
			require.True(t, bytes.Equal(before[fail], got), "%s changed", fail)
			ents, _ := os.ReadDir(dir)
			require.Len(t, ents, 2, "no temporary file left")
			if fail == "model.safetensors" { // nothing changed: the previous model loads
				back, err := llama.Load(dir)
				require.NoError(t, err)
				back.Close()
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
