package safetensors

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// u8s returns a U8 tensor of n bytes, all v.
func u8s(n int, v byte) Entry {
	data := make([]byte, n)
	for i := range data {
		data[i] = v
	}
	return Entry{DType: U8, Shape: []int64{int64(n)}, Data: data}
}

// readIndex parses the index file at path.
func readIndex(t *testing.T, path string) (md map[string]any, weightMap map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var idx struct {
		Metadata  map[string]any    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	require.NoError(t, json.Unmarshal(raw, &idx))
	return idx.Metadata, idx.WeightMap
}

func TestWriteShardedRoundTrip(t *testing.T) {
	dir := t.TempDir()
	tensors := sampleTensors()
	md := map[string]string{"format": "pt", "total_size": "ignored"}
	require.NoError(t, WriteSharded(dir, "model", tensors, md, 16))

	var total int64
	for _, e := range tensors {
		total += int64(len(e.Data))
	}
	gotMD, weightMap := readIndex(t, filepath.Join(dir, IndexFileName))
	assert.Equal(t, map[string]any{"format": "pt", "total_size": float64(total)}, gotMD)
	require.Len(t, weightMap, len(tensors))

	// Every shard is a valid safetensors file holding exactly the tensors
	// the index puts in it, within the limit unless it holds one tensor.
	shards := map[string][]string{}
	for name, shard := range weightMap {
		shards[shard] = append(shards[shard], name)
	}
	files := dirNames(t, dir)
	assert.Len(t, files, len(shards)+1, "shards plus the index, no temp files: %v", files)
	for shard, names := range shards {
		got, shardMD, err := ReadFile(filepath.Join(dir, shard))
		require.NoError(t, err, shard)
		assert.Equal(t, map[string]string{"format": "pt"}, shardMD, "shards get the metadata less total_size")
		assert.ElementsMatch(t, names, slices.Collect(maps.Keys(got)), shard)
		var size int
		for _, e := range got {
			size += len(e.Data)
		}
		if len(got) > 1 {
			assert.LessOrEqual(t, size, 16, shard)
		}
	}

	s, err := OpenSharded(filepath.Join(dir, IndexFileName))
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, IndexFileName), s.Path())
	assert.Equal(t, slices.Sorted(maps.Keys(tensors)), s.Names())
	assert.Equal(t, map[string]string{"format": "pt", "total_size": "79"}, s.Metadata())
	require.Equal(t, int64(79), total)
	for name, e := range tensors {
		info, ok := s.Info(name)
		require.True(t, ok, name)
		assert.Equal(t, e.DType, info.DType)
		assert.Equal(t, e.Shape, info.Shape)
		assert.Equal(t, int64(len(e.Data)), info.Size)
		shard, ok := s.Shard(name)
		require.True(t, ok)
		assert.Equal(t, filepath.Join(dir, weightMap[name]), shard)
		raw, err := os.ReadFile(shard)
		require.NoError(t, err)
		assert.Equal(t, string(e.Data), string(raw[info.Offset:info.Offset+info.Size]), "%s: Offset is from the start of its shard", name)

		b, err := s.Bytes(name)
		require.NoError(t, err, name)
		assert.Len(t, b, len(e.Data))
		if len(e.Data) > 0 {
			assert.Equal(t, e.Data, b, name)
		}
	}
	_, ok := s.Info("nope")
	assert.False(t, ok)
	_, ok = s.Shard("nope")
	assert.False(t, ok)
	_, err = s.Bytes("nope")
	require.Error(t, err)
	assert.Equal(t, "safetensors: "+s.Path()+`: no tensor "nope"`, err.Error())

	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	_, err = s.Bytes("w.f32")
	require.ErrorIs(t, err, os.ErrClosed)
}

func TestWriteShardedGreedy(t *testing.T) {
	tensors := map[string]Entry{
		"a": u8s(4, 1), "b": u8s(4, 2), // 8: fills shard 1 exactly
		"c": u8s(10, 3),                // larger than the limit: a shard of its own
		"d": u8s(1, 4), "e": u8s(3, 5), // 4
		"f": u8s(5, 6), // 4+5 > 8: a new shard
	}
	dir := t.TempDir()
	require.NoError(t, WriteSharded(dir, "adapter", tensors, nil, 8))
	assert.ElementsMatch(t, []string{
		"adapter-00001-of-00004.safetensors",
		"adapter-00002-of-00004.safetensors",
		"adapter-00003-of-00004.safetensors",
		"adapter-00004-of-00004.safetensors",
		"adapter.safetensors.index.json",
	}, dirNames(t, dir))
	md, weightMap := readIndex(t, filepath.Join(dir, "adapter.safetensors.index.json"))
	assert.Equal(t, map[string]any{"total_size": float64(27)}, md)
	assert.Equal(t, map[string]string{
		"a": "adapter-00001-of-00004.safetensors",
		"b": "adapter-00001-of-00004.safetensors",
		"c": "adapter-00002-of-00004.safetensors",
		"d": "adapter-00003-of-00004.safetensors",
		"e": "adapter-00003-of-00004.safetensors",
		"f": "adapter-00004-of-00004.safetensors",
	}, weightMap)
	_, shardMD, err := ReadFile(filepath.Join(dir, "adapter-00001-of-00004.safetensors"))
	require.NoError(t, err)
	assert.Nil(t, shardMD)

	// One shard when everything fits.
	dir = t.TempDir()
	require.NoError(t, WriteSharded(dir, "model", tensors, nil, 27))
	assert.ElementsMatch(t, []string{"model-00001-of-00001.safetensors", IndexFileName}, dirNames(t, dir))

	// No tensors: one empty shard and an empty weight_map.
	dir = t.TempDir()
	require.NoError(t, WriteSharded(dir, "model", nil, nil, 1))
	assert.ElementsMatch(t, []string{"model-00001-of-00001.safetensors", IndexFileName}, dirNames(t, dir))
	s, err := OpenSharded(filepath.Join(dir, IndexFileName))
	require.NoError(t, err)
	assert.Empty(t, s.Names())
	assert.Equal(t, map[string]string{"total_size": "0"}, s.Metadata())
	require.NoError(t, s.Close())
}

// TestWriteShardedIndexFormat pins the index bytes to what transformers
// writes: json.dumps(index, indent=2, sort_keys=True) + "\n".
func TestWriteShardedIndexFormat(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, WriteSharded(dir, "model", map[string]Entry{
		"b<&>": u8s(2, 1),
		"a":    {DType: F32, Shape: []int64{1}, Data: f32Bytes(1)},
	}, map[string]string{"format": "pt"}, 4))
	raw, err := os.ReadFile(filepath.Join(dir, IndexFileName))
	require.NoError(t, err)
	assert.Equal(t, `{
  "metadata": {
    "format": "pt",
    "total_size": 6
  },
  "weight_map": {
    "a": "model-00001-of-00002.safetensors",
    "b<&>": "model-00002-of-00002.safetensors"
  }
}
`, string(raw))
	assert.Equal(t, "model-00001-of-00002.safetensors", ShardFileName("model", 1, 2))
}

func TestWriteShardedErrors(t *testing.T) {
	good := map[string]Entry{"a": u8s(2, 1)}
	cases := []struct {
		name    string
		prefix  string
		tensors map[string]Entry
		md      map[string]string
		max     int64
		want    string
	}{
		{"empty prefix", "", good, nil, 8, `prefix "": empty file name`},
		{"prefix with separator", "sub/model", good, nil, 8, `prefix "sub/model": contains a path separator`},
		{"prefix dotdot", "..", good, nil, 8, `prefix "..": not a file name`},
		{"zero limit", "model", good, nil, 0, "maxShardBytes is 0, want > 0"},
		{"negative limit", "model", good, nil, -1, "maxShardBytes is -1, want > 0"},
		{"bad tensor", "model", map[string]Entry{"a": u8s(2, 1), "w": {DType: F32, Shape: []int64{2}, Data: []byte{1}}}, nil, 8,
			`tensor "w": data has 1 bytes but F32 [2] needs 8 bytes`},
		{"bad bool", "model", map[string]Entry{"a": u8s(2, 1), "m": {DType: Bool, Shape: []int64{2}, Data: []byte{0, 3}}}, nil, 8,
			`tensor "m": BOOL byte at offset 1 is 3, want 0 or 1`},
		{"reserved name", "model", map[string]Entry{MetadataKey: u8s(1, 0)}, nil, 8, `tensor name "__metadata__" is reserved`},
		{"bad metadata", "model", good, map[string]string{"k": "\xff"}, 8, `metadata "k": value is not valid UTF-8`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			err := WriteSharded(dir, tc.prefix, tc.tensors, tc.md, tc.max)
			require.Error(t, err)
			assert.True(t, strings.HasPrefix(err.Error(), "safetensors: "+filepath.Join(dir, tc.prefix+IndexSuffix)+": "), err.Error())
			assert.Contains(t, err.Error(), tc.want)
			assert.Empty(t, dirNames(t, dir), "nothing is written when validation fails")
		})
	}

	// A missing directory fails on the first shard and leaves no index.
	dir := filepath.Join(t.TempDir(), "missing")
	err := WriteSharded(dir, "model", good, nil, 8)
	require.ErrorIs(t, err, os.ErrNotExist)
	assert.NoFileExists(t, filepath.Join(dir, IndexFileName))
}

// shardedFixture writes shards of tensors named by the keys of shards (each
// a map of tensor name to U8 value) and an index with the given weight_map
// into a fresh directory, and returns the index path.
func shardedFixture(t *testing.T, shards map[string][]string, index string) string {
	t.Helper()
	dir := t.TempDir()
	for file, names := range shards {
		ts := map[string]Entry{}
		for i, n := range names {
			ts[n] = u8s(2, byte(i))
		}
		require.NoError(t, WriteFile(filepath.Join(dir, file), ts, map[string]string{"format": "pt"}))
	}
	path := filepath.Join(dir, IndexFileName)
	require.NoError(t, os.WriteFile(path, []byte(index), 0o644))
	return path
}

// mapped reports whether any of the process's memory mappings is of a file
// under dir (Linux only; false elsewhere).
func mapped(t *testing.T, dir string) bool {
	t.Helper()
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return false
	}
	return strings.Contains(string(maps), dir)
}

func TestOpenShardedErrors(t *testing.T) {
	const s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	two := map[string][]string{s1: {"a", "b"}, s2: {"c"}}
	wm := func(pairs ...string) string {
		var parts []string
		for i := 0; i < len(pairs); i += 2 {
			parts = append(parts, `"`+pairs[i]+`": "`+pairs[i+1]+`"`)
		}
		return `{"metadata": {"total_size": 6}, "weight_map": {` + strings.Join(parts, ", ") + `}}`
	}
	cases := []struct {
		name   string
		shards map[string][]string
		index  string
		want   string
	}{
		{"missing shard", map[string][]string{s1: {"a", "b"}}, wm("a", s1, "b", s1, "c", s2),
			"shard " + s2 + ": open "},
		{"tensor missing from shard", two, wm("a", s1, "b", s1, "c", s2, "ghost", s2),
			`tensor "ghost": the weight_map puts it in shard ` + s2 + ", which does not hold it"},
		{"tensor in the wrong shard", two, wm("a", s1, "b", s2, "c", s2),
			"shard " + s1 + ` holds tensor "b", which the weight_map puts in shard ` + s2},
		{"duplicate across shards", map[string][]string{s1: {"a", "b"}, s2: {"a", "c"}}, wm("a", s1, "b", s1, "c", s2),
			`tensor "a" is in two shards, ` + s1 + " and " + s2},
		{"extra tensor", two, wm("a", s1, "c", s2),
			"shard " + s1 + ` holds tensor "b", which the weight_map does not list`},
		{"bad shard", map[string][]string{s1: {"a"}, "bad.safetensors": nil}, wm("a", s1, "x", "bad.safetensors"),
			"shard bad.safetensors: "},
		{"path escape", two, wm("a", "../"+s1),
			`weight_map: tensor "a": shard "../` + s1 + `": contains a path separator`},
		{"absolute path", two, wm("a", "/etc/passwd"),
			`weight_map: tensor "a": shard "/etc/passwd": absolute path`},
		{"subdirectory", two, wm("a", "sub/"+s1),
			`weight_map: tensor "a": shard "sub/` + s1 + `": contains a path separator`},
		{"backslash", two, wm("a", `..\\`+s1),
			`weight_map: tensor "a": shard "..\\` + s1 + `": contains a path separator`},
		{"dotdot", two, wm("a", ".."), `weight_map: tensor "a": shard "..": not a file name`},
		{"empty shard name", two, wm("a", ""), `weight_map: tensor "a": shard "": empty file name`},
		{"not an object", two, `[1]`, "index is not a JSON object (starts with an array)"},
		{"invalid JSON", two, `{"weight_map": {`, "invalid JSON index"},
		{"invalid UTF-8", two, "{\"weight_map\": {\"\xff\": \"x\"}}", "index is not valid UTF-8"},
		{"trailing data", two, wm("a", s1, "b", s1, "c", s2) + ` {}`, "unexpected an object after the top-level object"},
		{"no weight_map", two, `{"metadata": {}}`, `index has no "weight_map"`},
		{"weight_map not object", two, `{"weight_map": []}`, `"weight_map" is an array, want an object`},
		{"shard not string", two, `{"weight_map": {"a": 1}}`, `weight_map: tensor "a": shard is number 1, want a file name`},
		{"duplicate tensor", two, `{"weight_map": {"a": "` + s1 + `", "a": "` + s1 + `"}}`, `duplicate tensor "a" in weight_map`},
		{"duplicate weight_map", two, `{"weight_map": {}, "weight_map": {}}`, `duplicate "weight_map" in index`},
		{"metadata not object", two, `{"metadata": "x", "weight_map": {}}`, `"metadata" is string "x", want an object`},
		{"duplicate metadata key", two, `{"metadata": {"k": 1, "k": 2}, "weight_map": {}}`, `duplicate metadata key "k"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := shardedFixture(t, tc.shards, tc.index)
			if tc.name == "bad shard" {
				require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(path), "bad.safetensors"), []byte("junk"), 0o644))
			}
			s, err := OpenSharded(path)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.True(t, strings.HasPrefix(err.Error(), "safetensors: "+path+": "), err.Error())
			assert.Contains(t, err.Error(), tc.want)
			// Shards opened before the error are closed (unmapped) again.
			runtime.GC()
			assert.False(t, mapped(t, filepath.Dir(path)), "a shard is still mapped")
		})
	}

	// A missing shard is os.ErrNotExist; a bad shard names the shard file.
	path := shardedFixture(t, map[string][]string{s1: {"a"}}, wm("a", s1, "c", s2))
	_, err := OpenSharded(path)
	require.ErrorIs(t, err, os.ErrNotExist)
	path = shardedFixture(t, map[string][]string{s1: {"a"}}, wm("a", s1))
	require.NoError(t, os.WriteFile(filepath.Join(filepath.Dir(path), s1), fileBytes(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)), 0o644))
	_, err = OpenSharded(path)
	require.Error(t, err)
	assert.Equal(t, "safetensors: "+path+": shard "+s1+": "+filepath.Join(filepath.Dir(path), s1)+
		`: tensor "a": data_offsets [0 4] but F32 [2] needs 8 bytes`, err.Error())

	// The index itself: missing, a directory.
	_, err = OpenSharded(filepath.Join(t.TempDir(), IndexFileName))
	require.ErrorIs(t, err, os.ErrNotExist)
	dir := t.TempDir()
	_, err = OpenSharded(dir)
	require.Error(t, err)
	assert.Equal(t, "safetensors: "+dir+": not a regular file (a directory)", err.Error())
}

func TestOpenShardedMetadataAndMapping(t *testing.T) {
	const s1 = "model-00001-of-00001.safetensors"
	path := shardedFixture(t, map[string][]string{s1: {"a", "b"}},
		`{"metadata": {"total_size": 4, "format": "pt", "flag": true, "nested": {"x": [1, 2]}, "none": null},
		  "extra": [1, 2], "weight_map": {"b": "`+s1+`", "a": "`+s1+`"}}`)
	s, err := OpenSharded(path)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{
		"total_size": "4", "format": "pt", "flag": "true", "nested": `{"x":[1,2]}`, "none": "null",
	}, s.Metadata())
	assert.Equal(t, []string{"a", "b"}, s.Names())
	if _, err := os.Stat("/proc/self/maps"); err == nil {
		assert.True(t, mapped(t, filepath.Dir(path)), "the shard is mapped while open")
	}
	require.NoError(t, s.Close())
	assert.False(t, mapped(t, filepath.Dir(path)), "Close unmaps the shards")

	// A null metadata is no metadata.
	path = shardedFixture(t, map[string][]string{s1: {"a"}}, `{"metadata": null, "weight_map": {"a": "`+s1+`"}}`)
	s, err = OpenSharded(path)
	require.NoError(t, err)
	assert.Nil(t, s.Metadata())
	require.NoError(t, s.Close())
}

// FuzzOpenSharded opens a fixed pair of shards through an arbitrary index:
// any index gives a checkpoint or an error, never a panic, and an accepted
// one holds exactly the shards' tensors.
func FuzzOpenSharded(f *testing.F) {
	const s1, s2 = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	dir := f.TempDir()
	want := map[string]Entry{"a": u8s(2, 1), "b": u8s(3, 2), "c": {DType: Bool, Shape: []int64{2}, Data: []byte{1, 0}}}
	if err := WriteFile(filepath.Join(dir, s1), map[string]Entry{"a": want["a"], "b": want["b"]}, nil); err != nil {
		f.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, s2), map[string]Entry{"c": want["c"]}, nil); err != nil {
		f.Fatal(err)
	}
	f.Add([]byte(`{"metadata": {"total_size": 7}, "weight_map": {"a": "` + s1 + `", "b": "` + s1 + `", "c": "` + s2 + `"}}`))
	f.Add([]byte(`{"weight_map": {"a": "` + s1 + `", "b": "` + s2 + `", "c": "` + s2 + `"}}`))
	f.Add([]byte(`{"weight_map": {"a": "../` + s1 + `"}}`))
	f.Add([]byte(`{"metadata": {"k": [1, {"x": null}]}, "weight_map": {}}`))
	f.Add([]byte(`{"weight_map": {"a": "` + s1 + `", "a": "` + s1 + `"}}`))

	path := filepath.Join(dir, IndexFileName)
	f.Fuzz(func(t *testing.T, index []byte) {
		require.NoError(t, os.WriteFile(path, index, 0o600))
		s, err := OpenSharded(path)
		if err != nil {
			require.Nil(t, s)
			require.True(t, strings.HasPrefix(err.Error(), "safetensors: "+path+": "), err.Error())
			return
		}
		defer s.Close()
		names := s.Names()
		if len(names) > 0 {
			// Any shard opened must be listed whole, so it is all or nothing
			// per shard: {a, b}, {c}, or all three.
			require.Contains(t, [][]string{{"a", "b"}, {"c"}, {"a", "b", "c"}}, names)
		}
		for _, name := range names {
			b, err := s.Bytes(name)
			require.NoError(t, err, name)
			require.Equal(t, want[name].Data, b, name)
		}
		_ = s.Metadata()
		require.NoError(t, s.Close())
	})
}
