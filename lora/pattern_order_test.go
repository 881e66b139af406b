package lora_test

// rank_pattern and alpha_pattern with several matching keys: PEFT's
// get_pattern_key (peft/utils/other.py) returns the first key, in the
// dict's order, whose `(.*\.)?(key)$` matches the module path. A config
// read from adapter_config.json must follow the file's order, and
// SaveAdapter must write the keys in the order golora tried them, so that
// PEFT picks the same ranks.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/lora"
)

func TestPatternOrderFollowsTheFile(t *testing.T) {
	// Go config: both keys match model.layers.N.self_attn.q_proj; golora
	// (a map has no order) tries the longest first, so q_proj gets 6.
	n := newPeftNet(t, 3)
	cfg := lora.Config{R: 4, Alpha: 4, TargetModules: []string{"q_proj", "v_proj"},
		RankPattern: map[string]int64{"q_proj": 2, "self_attn.q_proj": 6}}
	adaptNet(t, n, "default", cfg)
	ranks := map[string]int64{}
	for _, l := range lora.Layers(n) {
		ranks[l.Name] = l.Layer.LoraLayer().Adapter("default").Rank()
	}
	require.Equal(t, int64(6), ranks["model.layers.0.self_attn.q_proj"])
	require.Equal(t, int64(4), ranks["model.layers.0.self_attn.v_proj"])

	// SaveAdapter writes that precedence as the file's order, so PEFT's
	// first match is the same key.
	dir := t.TempDir()
	require.NoError(t, lora.SaveAdapter(n, dir, "default"))
	raw, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	require.NoError(t, err)
	text := string(raw)
	i, j := strings.Index(text, `"self_attn.q_proj"`), strings.Index(text, `"q_proj": 2`)
	require.True(t, i >= 0 && j >= 0 && i < j, "rank_pattern keys in precedence order: %s", text)

	// A file whose order says q_proj first (as PEFT would have written a
	// dict built that way): the same keys now give q_proj rank 2, so the
	// tensors saved at rank 6 no longer fit and strict loading names them.
	swapped := strings.Replace(text, `"self_attn.q_proj": 6,`, ``, 1)
	swapped = strings.Replace(swapped, `"q_proj": 2`, `"q_proj": 2, "self_attn.q_proj": 6`, 1)
	require.NotEqual(t, text, swapped)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "adapter_config.json"), []byte(swapped), 0o644))
	other := newPeftNet(t, 3)
	err = lora.LoadAdapter(other, dir, "default")
	require.ErrorContains(t, err, "misshaped")
	require.ErrorContains(t, err, "self_attn.q_proj.lora_A.weight")

	// The file's own order round-trips: loaded with the original order, the
	// same ranks, and loading succeeds.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "adapter_config.json"), raw, 0o644))
	third := newPeftNet(t, 3)
	require.NoError(t, lora.LoadAdapter(third, dir, "default"))
	for _, l := range lora.Layers(third) {
		require.Equal(t, ranks[l.Name], l.Layer.LoraLayer().Adapter("default").Rank(), l.Name)
	}
}
