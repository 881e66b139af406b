package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/golora/golora/internal/atomicfile"
)

// IndexSuffix ends the name of a sharded checkpoint's index file: WriteSharded
// with prefix "model" writes "model" + IndexSuffix, the IndexFileName.
const IndexSuffix = ".safetensors.index.json"

// TotalSizeKey is the index metadata key holding the total byte size of all
// tensors' data.
const TotalSizeKey = "total_size"

// Sharded is an open sharded checkpoint in the Hugging Face layout: an index
// file, such as model.safetensors.index.json, of the form
//
//	{"metadata": {"total_size": 123, ...},
//	 "weight_map": {"tensor.name": "model-00001-of-00002.safetensors", ...}}
//
// and the shard files it names, each opened as a File. Its methods are safe
// for concurrent use.
type Sharded struct {
	path     string
	names    []string
	metadata map[string]string
	shardOf  map[string]*File // tensor name -> shard
	shards   []*File          // sorted by file name
}

// OpenSharded opens the index file at indexPath and every shard its
// weight_map names, with Open. Shard names are resolved against the index's
// directory and must be plain file names: an empty name, an absolute path,
// a name with a path separator, or "." or ".." is refused. (The check is on
// the names only: a shard may be a symbolic link, as in the Hugging Face
// cache, where snapshot files link into a blobs directory.)
//
// The index must be a JSON object without duplicate keys whose "weight_map"
// maps each tensor name to a shard file name; "metadata", if present and not
// null, must be an object (its string values are kept as is, other values as
// their JSON text, so "total_size" reads as e.g. "123"). Other top-level keys
// are ignored. The index must be a regular file no larger than MaxHeaderSize.
//
// Every tensor the weight_map lists must be in the shard it names, and every
// tensor of every shard must be listed, in exactly one shard. On any error
// every file opened so far is closed again. Errors start with
// "safetensors: " followed by the index's path and name the shard and the
// tensor at fault.
func OpenSharded(indexPath string) (*Sharded, error) {
	s, err := openSharded(indexPath)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %s: %w", indexPath, err)
	}
	return s, nil
}

// openSharded implements OpenSharded; its errors lack the
// "safetensors: <indexPath>: " prefix.
func openSharded(indexPath string) (_ *Sharded, err error) {
	raw, err := readIndexFile(indexPath)
	if err != nil {
		return nil, err
	}
	metadata, weightMap, err := parseIndex(raw)
	if err != nil {
		return nil, err
	}

	// Shards, in file name order, and the tensors the index puts in each.
	var shardNames []string
	listed := map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(weightMap)) {
		shard := weightMap[name]
		if _, ok := listed[shard]; !ok {
			if err := checkFileName(shard); err != nil {
				return nil, fmt.Errorf("weight_map: tensor %q: shard %q: %w", name, shard, err)
			}
			shardNames = append(shardNames, shard)
		}
		listed[shard] = append(listed[shard], name)
	}
	slices.Sort(shardNames)

	s := &Sharded{
		path:     indexPath,
		names:    slices.Sorted(maps.Keys(weightMap)),
		metadata: metadata,
		shardOf:  make(map[string]*File, len(weightMap)),
	}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	dir := filepath.Dir(indexPath)
	holder := map[string]string{} // tensor name -> shard file name, from the shards
	for _, shard := range shardNames {
		f, err := open(filepath.Join(dir, shard))
		if err != nil {
			return nil, fmt.Errorf("shard %s: %w", shard, err)
		}
		s.shards = append(s.shards, f)
		for _, name := range f.names {
			if other, dup := holder[name]; dup {
				return nil, fmt.Errorf("tensor %q is in two shards, %s and %s", name, other, shard)
			}
			holder[name] = shard
			want, ok := weightMap[name]
			switch {
			case !ok:
				return nil, fmt.Errorf("shard %s holds tensor %q, which the weight_map does not list", shard, name)
			case want != shard:
				return nil, fmt.Errorf("shard %s holds tensor %q, which the weight_map puts in shard %s", shard, name, want)
			}
			s.shardOf[name] = f
		}
		for _, name := range listed[shard] {
			if _, ok := f.tensors[name]; !ok {
				return nil, fmt.Errorf("tensor %q: the weight_map puts it in shard %s, which does not hold it", name, shard)
			}
		}
	}
	return s, nil
}

// readIndexFile reads the regular file at path, refusing one larger than
// MaxHeaderSize without reading it.
func readIndexFile(path string) ([]byte, error) {
	f, err := openNoBlock(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", describeMode(fi.Mode()))
	}
	if fi.Size() > MaxHeaderSize {
		return nil, fmt.Errorf("index is %d bytes, more than the %d-byte limit", fi.Size(), MaxHeaderSize)
	}
	buf := make([]byte, fi.Size())
	if err := readAt(f, buf, 0); err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	return buf, nil
}

// checkFileName checks that name is a plain file name: not empty, not
// absolute, without a path separator, and not "." or "..".
func checkFileName(name string) error {
	switch {
	case name == "":
		return errors.New("empty file name")
	case filepath.IsAbs(name) || strings.HasPrefix(name, "/") || strings.HasPrefix(name, `\`):
		return errors.New("absolute path; want a file name in the index's directory")
	case strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, filepath.Separator):
		return errors.New("contains a path separator; want a file name in the index's directory")
	case name == "." || name == "..":
		return errors.New("not a file name")
	case strings.ContainsRune(name, 0):
		return errors.New("contains a NUL byte")
	}
	return nil
}

// parseIndex parses an index file with a token walk, so that duplicate keys
// are detected. It returns the metadata (nil when absent or null) and the
// weight_map.
func parseIndex(raw []byte) (map[string]string, map[string]string, error) {
	if !utf8.Valid(raw) {
		return nil, nil, errors.New("index is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, fmt.Errorf("invalid JSON index: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, fmt.Errorf("index is not a JSON object (starts with %s)", describeToken(tok))
	}
	var (
		metadata  map[string]string
		weightMap map[string]string
		seen      = map[string]bool{}
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("invalid JSON index: %w", err)
		}
		key, _ := tok.(string)
		if seen[key] {
			return nil, nil, fmt.Errorf("duplicate %q in index", key)
		}
		seen[key] = true
		switch key {
		case "metadata":
			if metadata, err = parseIndexMetadata(dec); err != nil {
				return nil, nil, err
			}
		case "weight_map":
			if weightMap, err = parseWeightMap(dec); err != nil {
				return nil, nil, err
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, nil, fmt.Errorf("invalid JSON index: %w", err)
			}
		}
	}
	if _, err := dec.Token(); err != nil { // closing '}'
		return nil, nil, fmt.Errorf("invalid JSON index: %w", err)
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, nil, fmt.Errorf("invalid JSON index after the top-level object: %w", err)
		}
		return nil, nil, fmt.Errorf("invalid JSON index: unexpected %s after the top-level object", describeToken(tok))
	}
	if weightMap == nil {
		return nil, nil, errors.New(`index has no "weight_map"`)
	}
	return metadata, weightMap, nil
}

// parseIndexMetadata parses the index's "metadata": null or an object whose
// string values are kept as is and other values as compact JSON text.
func parseIndexMetadata(dec *json.Decoder) (map[string]string, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON index: %w", err)
	}
	if tok == nil {
		return nil, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf(`"metadata" is %s, want an object`, describeToken(tok))
	}
	md := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON index: %w", err)
		}
		key, _ := tok.(string)
		if _, dup := md[key]; dup {
			return nil, fmt.Errorf("duplicate metadata key %q", key)
		}
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("invalid JSON index: %w", err)
		}
		if val[0] == '"' {
			var s string
			if err := json.Unmarshal(val, &s); err != nil { // unreachable: val is a valid string
				return nil, fmt.Errorf("invalid JSON index: %w", err)
			}
			md[key] = s
			continue
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, val); err != nil { // unreachable: val is valid JSON
			return nil, fmt.Errorf("invalid JSON index: %w", err)
		}
		md[key] = compact.String()
	}
	if _, err := dec.Token(); err != nil { // closing '}'
		return nil, fmt.Errorf("invalid JSON index: %w", err)
	}
	return md, nil
}

// parseWeightMap parses the index's "weight_map": an object mapping tensor
// names to shard file names.
func parseWeightMap(dec *json.Decoder) (map[string]string, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON index: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf(`"weight_map" is %s, want an object`, describeToken(tok))
	}
	wm := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON index: %w", err)
		}
		name, _ := tok.(string)
		if _, dup := wm[name]; dup {
			return nil, fmt.Errorf("duplicate tensor %q in weight_map", name)
		}
		tok, err = dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON index: %w", err)
		}
		shard, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("weight_map: tensor %q: shard is %s, want a file name", name, describeToken(tok))
		}
		wm[name] = shard
	}
	if _, err := dec.Token(); err != nil { // closing '}'
		return nil, fmt.Errorf("invalid JSON index: %w", err)
	}
	return wm, nil
}

// Path returns the path of the index file.
func (s *Sharded) Path() string { return s.path }

// Names returns the names of all tensors, sorted. The slice is the caller's.
func (s *Sharded) Names() []string { return slices.Clone(s.names) }

// Metadata returns a copy of the index's "metadata", or nil if it has none.
// Values that are not JSON strings appear as their JSON text, so a
// "total_size" of 123 reads as "123". The shards' own metadata is ignored.
func (s *Sharded) Metadata() map[string]string { return maps.Clone(s.metadata) }

// Info describes the named tensor; Offset is from the start of its shard
// file (see Shard). It reports false if there is no such tensor.
func (s *Sharded) Info(name string) (Info, bool) {
	f, ok := s.shardOf[name]
	if !ok {
		return Info{}, false
	}
	return f.Info(name)
}

// Shard returns the path of the shard file holding the named tensor, and
// false if there is no such tensor.
func (s *Sharded) Shard(name string) (string, bool) {
	f, ok := s.shardOf[name]
	if !ok {
		return "", false
	}
	return f.path, true
}

// Bytes returns the named tensor's data as File.Bytes of its shard does:
// a read-only slice of the shard's mapping, valid until Close.
func (s *Sharded) Bytes(name string) ([]byte, error) {
	f, ok := s.shardOf[name]
	if !ok {
		return nil, fmt.Errorf("safetensors: %s: no tensor %q", s.path, name)
	}
	return f.Bytes(name)
}

// Close closes every shard and returns their errors joined. Slices returned
// by Bytes must not be used after Close. Calling Close again does nothing
// and returns nil.
func (s *Sharded) Close() error {
	var errs []error
	for _, f := range s.shards {
		errs = append(errs, f.Close())
	}
	return errors.Join(errs...)
}

// ShardFileName returns the name of shard i (1-based) of n written by
// WriteSharded, in the transformers naming: ShardFileName("model", 1, 2) is
// "model-00001-of-00002.safetensors".
func ShardFileName(prefix string, i, n int) string {
	return fmt.Sprintf("%s-%05d-of-%05d.safetensors", prefix, i, n)
}

// WriteSharded writes tensors as a sharded checkpoint in dir, in the Hugging
// Face layout that OpenSharded reads: shard files named by ShardFileName and
// the index prefix+IndexSuffix (model.safetensors.index.json for prefix
// "model").
//
// Tensors are taken in sorted-name order and fill shards greedily: a tensor
// starts a new shard when adding its data to the current, non-empty shard
// would exceed maxShardBytes (which counts tensor data only, not headers). A
// tensor is never split, so one larger than maxShardBytes gets a shard of its
// own. With no tensors a single empty shard is written.
//
// Each shard's header gets metadata, less any TotalSizeKey. The index gets
// {"metadata": metadata plus "total_size": the sum of all tensors' data
// sizes as a JSON number, "weight_map": {name: shard}}, formatted with sorted
// keys and two-space indentation, as transformers writes it.
//
// Everything is validated before anything is written. Each file is written
// atomically with WriteFile's temporary-file-and-rename, the index last, so
// an index never names a shard that is not complete; the set as a whole is
// not atomic, and shards left by an earlier, larger save into dir are not
// removed.
func WriteSharded(dir, prefix string, tensors map[string]Entry, metadata map[string]string, maxShardBytes int64) error {
	if err := writeSharded(dir, prefix, tensors, metadata, maxShardBytes); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// writeSharded implements WriteSharded; its errors lack the "safetensors: "
// prefix.
func writeSharded(dir, prefix string, tensors map[string]Entry, metadata map[string]string, maxShardBytes int64) error {
	indexPath := filepath.Join(dir, prefix+IndexSuffix)
	if err := checkFileName(prefix); err != nil {
		return fmt.Errorf("%s: prefix %q: %w", indexPath, prefix, err)
	}
	if maxShardBytes <= 0 {
		return fmt.Errorf("%s: maxShardBytes is %d, want > 0", indexPath, maxShardBytes)
	}
	if err := checkMetadata(metadata); err != nil {
		return fmt.Errorf("%s: %w", indexPath, err)
	}
	names := slices.Sorted(maps.Keys(tensors))
	var (
		shards [][]string
		cur    []string
		curLen int64
		total  int64
	)
	for _, name := range names {
		size, err := checkEntry(name, tensors[name])
		if err != nil {
			return fmt.Errorf("%s: %w", indexPath, err)
		}
		total += size
		if len(cur) > 0 && size > maxShardBytes-curLen {
			shards = append(shards, cur)
			cur, curLen = nil, 0
		}
		cur = append(cur, name)
		curLen += size
	}
	shards = append(shards, cur)

	shardMD := maps.Clone(metadata)
	delete(shardMD, TotalSizeKey)
	weightMap := make(map[string]string, len(tensors))
	for i, group := range shards {
		file := ShardFileName(prefix, i+1, len(shards))
		sub := make(map[string]Entry, len(group))
		for _, name := range group {
			sub[name] = tensors[name]
			weightMap[name] = file
		}
		if err := writeFile(filepath.Join(dir, file), sub, shardMD); err != nil {
			return err
		}
	}

	indexMD := make(map[string]any, len(metadata)+1)
	for k, v := range metadata {
		indexMD[k] = v
	}
	indexMD[TotalSizeKey] = json.Number(strconv.FormatInt(total, 10))
	return atomicfile.Write(indexPath, 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Metadata  map[string]any    `json:"metadata"`
			WeightMap map[string]string `json:"weight_map"`
		}{indexMD, weightMap})
	})
}
