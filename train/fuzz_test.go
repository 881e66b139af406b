package train

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/internal/reftest"
	"github.com/golora/golora/torch"
)

// leakSlack is how many tensors over the baseline a fuzz call may leave
// to the finalizers before the leak check settles them.
const leakSlack = 200

// FuzzReadExamples reads fuzzed data as JSON Lines (jsonl) or plain text
// with byteEncoder: examples or an error, never a panic; every example
// has as many labels as ids, ids in [0, MaxID], labels that are the id
// or IgnoreIndex, a token to learn after the first position, and the EOS
// last; Pack and Pad take them.
func FuzzReadExamples(f *testing.F) {
	for _, s := range []string{
		`{"text": "ab"}` + "\n\n" + `{"prompt": "a", "completion": "bc"}` + "\r\n",
		`{"prompt": "a", "completion": ""}`,
		`{"prompt": "a"}`,
		`{"text": "A"}`,
		`{"text": null, "prompt": "x", "completion": "y"}`,
		`{"text": "zz", "extra": [1, 2, {"a": null}]}` + "\n" + `[]`,
		"ab\n  \ncd\n",
		"\xff\n",
		"",
	} {
		f.Add(true, []byte(s))
		f.Add(false, []byte(s))
	}
	o := DataOptions{EOS: 2, MaxID: 40}
	f.Fuzz(func(t *testing.T, jsonl bool, data []byte) {
		name := "d.txt"
		if jsonl {
			name = "d.jsonl"
		}
		ex, err := ReadExamples(name, bytes.NewReader(data), byteEncoder{}, o)
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "train: "), err.Error())
			require.Nil(t, ex)
			return
		}
		require.NotEmpty(t, ex)
		for i, e := range ex {
			require.Len(t, e.Labels, len(e.IDs), "example %d", i)
			require.GreaterOrEqual(t, len(e.IDs), 2, "example %d", i)
			require.Equal(t, o.EOS, e.IDs[len(e.IDs)-1], "example %d", i)
			for j, id := range e.IDs {
				require.True(t, id >= 0 && id <= o.MaxID, "example %d: id %d", i, id)
				require.True(t, e.Labels[j] == id || e.Labels[j] == IgnoreIndex, "example %d: label %d for id %d", i, e.Labels[j], id)
			}
			require.Positive(t, Example{Labels: e.Labels[1:]}.Tokens(), "example %d has nothing to learn", i)
		}
		for _, seq := range []int{2, 5} {
			rows, err := Pack(ex, seq, 0)
			require.NoError(t, err)
			for _, r := range rows {
				require.Len(t, r.IDs, seq)
			}
			if rows, err := Pad(ex, seq, 0); err == nil {
				for _, r := range rows {
					require.Len(t, r.IDs, seq)
				}
			}
		}
	})
}

// FuzzLoadCheckpoint writes fuzzed bytes to a file and reads it with
// ReadPosition and LoadCheckpoint into the test run: a position or an
// error, never a panic. The two agree (LoadCheckpoint loads only what
// ReadPosition reads, with the same position); a LoadCheckpoint that
// fails before applying anything (every error but those saying that part
// is loaded already) leaves the weights and the generator as they were;
// nothing leaks. The seeds are real SaveCheckpoint files, before and
// after a step, and edits of them; more are in
// testdata/fuzz/FuzzLoadCheckpoint.
func FuzzLoadCheckpoint(f *testing.F) {
	r, err := newRunErr(nHidden, false)
	require.NoError(f, err)
	f.Cleanup(r.close)
	dir := f.TempDir()
	path := filepath.Join(dir, "ckpt.safetensors")
	require.NoError(f, r.save(path))
	fresh, err := os.ReadFile(path)
	require.NoError(f, err)
	_, err = r.steps(1)
	require.NoError(f, err)
	require.NoError(f, r.save(path))
	stepped, err := os.ReadFile(path)
	require.NoError(f, err)
	f.Add(fresh)
	f.Add(stepped)
	f.Add(bytes.Replace(stepped, []byte(`"golora.step":"1"`), []byte(`"golora.step":"-1"`), 1))
	f.Add(bytes.Replace(stepped, []byte(`model.fc1`), []byte(`model.fc3`), 1))
	f.Add(bytes.Replace(stepped, []byte(`AdamW`), []byte(`Adam_`), 1))
	f.Add(stepped[:len(stepped)-7])
	f.Add([]byte{})

	rngOf := func(t *testing.T) []uint8 {
		s := torch.RNGState(torch.CPU)
		defer s.Close()
		v, err := torch.ToSlice[uint8](s)
		require.NoError(t, err)
		return v
	}
	live := reftest.SettledLiveTensors()
	f.Fuzz(func(t *testing.T, data []byte) {
		require.NoError(t, os.WriteFile(path, data, 0o600))
		w0, err := weights(r.model)
		require.NoError(t, err)
		rng0 := rngOf(t)
		pos, perr := ReadPosition(path)
		lpos, lerr := LoadCheckpoint(path, r.state())
		if lerr == nil {
			require.NoError(t, perr, "LoadCheckpoint read a file ReadPosition refuses")
			require.Equal(t, pos.Step, lpos.Step)
			require.Equal(t, pos.Data, lpos.Data)
			require.GreaterOrEqual(t, pos.Step, int64(0))
		} else {
			require.True(t, strings.HasPrefix(lerr.Error(), "train: LoadCheckpoint"), lerr.Error())
			if !strings.Contains(lerr.Error(), "loaded already") {
				w1, err := weights(r.model)
				require.NoError(t, err)
				require.Equal(t, w0, w1, "a failed LoadCheckpoint changed the weights: %v", lerr)
				require.True(t, slices.Equal(rng0, rngOf(t)), "a failed LoadCheckpoint changed the generator: %v", lerr)
			}
		}
		if perr != nil {
			require.True(t, strings.HasPrefix(perr.Error(), "train: ReadPosition"), perr.Error())
		}
		// Finalizers free what the calls dropped: settle only when many
		// are pending (a leak grows past any slack).
		if torch.LiveTensors() > live+leakSlack {
			require.LessOrEqual(t, reftest.SettledLiveTensors(), live, "tensors leaked")
		}
	})
}
