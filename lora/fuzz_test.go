package lora_test

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/lora"
	"github.com/golora/golora/module"
	"github.com/golora/golora/torch"
)

// leakSlack is how many tensors over the baseline a fuzz call may leave
// to the finalizers before the leak check settles them.
const leakSlack = 200

// FuzzLoadAdapter writes a fuzzed adapter_config.json and
// adapter_model.safetensors and loads them into a fresh peftNet with
// LoadAdapter: the adapter or an error, never a panic. A failed load
// leaves the model as it was (the same parameters, the same values, no
// LoRA layer: all or nothing), a successful one gives an adapter whose
// tensors are the file's, and nothing leaks. The seeds are the two
// adapters SaveAdapter writes for savedNet, edited; more are in
// testdata/fuzz/FuzzLoadAdapter.
func FuzzLoadAdapter(f *testing.F) {
	src := f.TempDir()
	n := newPeftNet(f, 11)
	adaptNet(f, n, "default", lora.Config{R: 4, Alpha: 8, TargetModules: allKinds, ModulesToSave: []string{"classifier"}})
	adaptNet(f, n, "tenant", lora.Config{R: 2, Alpha: 2, UseDoRA: true, TargetModules: []string{"q_proj", "conv"}})
	require.NoError(f, lora.SaveAdapter(n, src, "default"))
	require.NoError(f, lora.SaveAdapter(n, src, "tenant"))
	read := func(parts ...string) []byte {
		b, err := os.ReadFile(filepath.Join(append([]string{src}, parts...)...))
		require.NoError(f, err)
		return b
	}
	cfg, weights := read(lora.ConfigFile), read(lora.WeightsFile)
	tcfg, tweights := read("tenant", lora.ConfigFile), read("tenant", lora.WeightsFile)
	f.Add(cfg, weights)
	f.Add(tcfg, tweights)
	f.Add(cfg, tweights)                                                                 // the file does not match the config
	f.Add([]byte(strings.Replace(string(cfg), `"r": 4`, `"r": 3`, 1)), weights)          // r disagrees with lora_A
	f.Add([]byte(strings.Replace(string(cfg), `"r": 4`, `"r": 1000000000`, 1)), weights) // a huge r
	f.Add([]byte(strings.Replace(string(tcfg), `"use_dora": true`, `"use_dora": false`, 1)), tweights)
	f.Add([]byte(`{"peft_type": "LORA", "r": 2, "target_modules": "all-linear"}`), weights)
	f.Add([]byte(`{"peft_type": "LORA", "r": 2, "target_modules": ".*q_proj", "layers_to_transform": 1, "layers_pattern": "layers"}`), tweights)
	f.Add([]byte(`{"peft_type": "LORA", "r": 2, "target_modules": ["q_proj"], "rank_pattern": {"q_proj": 3}, "alpha_pattern": {"q_proj": -1}}`), tweights)
	f.Add([]byte(`{"peft_type": "LORA", "r": 4, "target_modules": ["q_proj"], "init_lora_weights": "pissa"}`), weights)
	f.Add([]byte(`{"peft_type": "PREFIX_TUNING"}`), weights)
	f.Add([]byte(`{`), []byte{})
	f.Add(cfg, weights[:len(weights)/2])

	// Every call loads into a fresh model (a successful load changes it).
	// Logs of ignored fields go nowhere while fuzzing.
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.Cleanup(func() { slog.SetDefault(old) })
	dir := f.TempDir()
	live := reftest.SettledLiveTensors()
	f.Fuzz(func(t *testing.T, config, weights []byte) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, lora.ConfigFile), config, 0o600))
		require.NoError(t, os.WriteFile(filepath.Join(dir, lora.WeightsFile), weights, 0o600))
		n := newPeftNet(t, 11)
		before := paramNames(n)
		snap := snapshot(t, n)
		err := lora.LoadAdapter(n, dir, "default")
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "lora: LoadAdapter: "), err.Error())
			require.Equal(t, before, paramNames(n), "a failed load added parameters: %v", err)
			require.Empty(t, lora.Layers(n), "a failed load left LoRA layers: %v", err)
			require.Equal(t, snap, snapshot(t, n), "a failed load changed the model: %v", err)
		} else {
			require.NotEmpty(t, lora.Layers(n))
			for _, nl := range lora.Layers(n) {
				require.NotNil(t, nl.Layer.LoraLayer().Adapter("default"), nl.Name)
			}
		}
		module.Close(n)
		// Finalizers free what the calls dropped: settle only when many
		// are pending (a leak grows past any slack).
		if torch.LiveTensors() > live+leakSlack {
			require.LessOrEqual(t, reftest.SettledLiveTensors(), live, "tensors leaked")
		}
	})
}

// TestLoadAdapterRefusesHugeRank: a config whose r is far beyond the
// file's ranks fails before the adapters are built (a lora_A of 10⁹ rows
// would be gigabytes), naming both.
func TestLoadAdapterRefusesHugeRank(t *testing.T) {
	dir := t.TempDir()
	savedNet(t, dir)
	bad := rewrite(t, dir, func(_ map[string]*torch.Tensor, cfg map[string]any) { cfg["r"] = 1e9 })
	n := newPeftNet(t, 11)
	requireErr(t, func() error { return lora.LoadAdapter(n, bad, "default") },
		"nothing loaded", "adapter_config.json's r = 1000000000, but the file's largest lora_A has 4 rows")
	requireErr(t, func() error { return lora.LoadAdapter(n, bad, "default", lora.Lenient()) }, "r = 1000000000")
	require.Empty(t, lora.Layers(n))
}
