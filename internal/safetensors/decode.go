package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"unicode/utf8"
)

// Decode parses a whole safetensors file held in buf and returns its tensors
// and metadata (nil when the header has no "__metadata__"). The returned
// Entry.Data slices alias buf (with capacity clipped to their length).
//
// The file is validated strictly: the header length must fit in the file and
// in MaxHeaderSize, the header must be a UTF-8 JSON object without duplicate
// keys, every tensor needs a known dtype, a non-negative shape and
// data_offsets [begin, end] whose size is numel*elemsize, and the tensors
// must tile the byte buffer exactly: sorted by begin, the first starts at 0,
// each begins where the previous ended, and the last ends at the end of the
// file. Errors start with "safetensors: " and name the offending tensor.
func Decode(buf []byte) (map[string]Entry, map[string]string, error) {
	tensors, metadata, err := decode(buf)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %w", err)
	}
	return tensors, metadata, nil
}

// ReadFile reads and decodes the safetensors file at path. Decoding errors
// are prefixed with the path, e.g.
// `safetensors: model.safetensors: tensor "w": data_offsets [0 40] but F32 [2 3] needs 24 bytes`.
func ReadFile(path string) (map[string]Entry, map[string]string, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %w", err)
	}
	tensors, metadata, err := decode(buf)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return tensors, metadata, nil
}

// tensorInfo is one parsed header entry.
type tensorInfo struct {
	name       string
	dtype      string
	shape      []int64
	begin, end int64
}

// decode implements Decode; its errors carry no "safetensors: " prefix.
func decode(buf []byte) (map[string]Entry, map[string]string, error) {
	if len(buf) < 8 {
		return nil, nil, fmt.Errorf("file too short: %d bytes, need at least 8 for the header length", len(buf))
	}
	n := binary.LittleEndian.Uint64(buf[:8])
	if n > MaxHeaderSize {
		return nil, nil, fmt.Errorf("header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if n > uint64(len(buf)-8) {
		return nil, nil, fmt.Errorf("header length %d exceeds file size (%d bytes after the length prefix)", n, len(buf)-8)
	}
	header := buf[8 : 8+n]
	data := buf[8+n:]

	infos, metadata, err := parseHeader(header)
	if err != nil {
		return nil, nil, err
	}

	// Validate sizes, then check the tensors tile the buffer exactly.
	for _, t := range infos {
		size, err := byteSize(t.dtype, t.shape)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", t.name, err)
		}
		if t.end-t.begin != size {
			return nil, nil, fmt.Errorf("tensor %q: data_offsets [%d %d] but %s %v needs %d bytes",
				t.name, t.begin, t.end, t.dtype, t.shape, size)
		}
	}
	sort.Slice(infos, func(i, j int) bool {
		a, b := infos[i], infos[j]
		if a.begin != b.begin {
			return a.begin < b.begin
		}
		if a.end != b.end {
			return a.end < b.end
		}
		return a.name < b.name
	})
	bufLen := int64(len(data))
	var prevEnd int64
	prevName := ""
	for i, t := range infos {
		switch {
		case t.begin > prevEnd && i == 0:
			return nil, nil, fmt.Errorf("tensor %q: data_offsets [%d %d]: first tensor must begin at 0 (gap of %d bytes)",
				t.name, t.begin, t.end, t.begin)
		case t.begin > prevEnd:
			return nil, nil, fmt.Errorf("tensor %q: data_offsets [%d %d]: gap of %d bytes after tensor %q, which ends at %d",
				t.name, t.begin, t.end, t.begin-prevEnd, prevName, prevEnd)
		case t.begin < prevEnd:
			return nil, nil, fmt.Errorf("tensor %q: data_offsets [%d %d] overlap tensor %q, which ends at %d",
				t.name, t.begin, t.end, prevName, prevEnd)
		}
		if t.end > bufLen {
			return nil, nil, fmt.Errorf("file truncated: tensor %q: data_offsets [%d %d] but the byte buffer has only %d bytes",
				t.name, t.begin, t.end, bufLen)
		}
		prevEnd, prevName = t.end, t.name
	}
	if prevEnd != bufLen {
		return nil, nil, fmt.Errorf("byte buffer has %d bytes but tensors cover only %d: %d trailing bytes",
			bufLen, prevEnd, bufLen-prevEnd)
	}

	tensors := make(map[string]Entry, len(infos))
	for _, t := range infos {
		tensors[t.name] = Entry{
			DType: t.dtype,
			Shape: t.shape,
			Data:  data[t.begin:t.end:t.end],
		}
	}
	return tensors, metadata, nil
}

// parseHeader parses the JSON header with a token walk so that duplicate keys,
// which encoding/json would silently accept, are detected.
func parseHeader(header []byte) ([]tensorInfo, map[string]string, error) {
	if !utf8.Valid(header) {
		return nil, nil, errors.New("header is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, fmt.Errorf("invalid JSON header: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, fmt.Errorf("header is not a JSON object (starts with %s)", describeToken(tok))
	}
	var (
		infos    []tensorInfo
		metadata map[string]string
		seen     = map[string]bool{}
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("invalid JSON header: %w", err)
		}
		key, ok := tok.(string)
		if !ok { // unreachable: the decoder only yields strings as object keys
			return nil, nil, fmt.Errorf("invalid JSON header: object key is %s", describeToken(tok))
		}
		if seen[key] {
			if key == MetadataKey {
				return nil, nil, fmt.Errorf("duplicate %q in header", MetadataKey)
			}
			return nil, nil, fmt.Errorf("duplicate tensor name %q in header", key)
		}
		seen[key] = true
		if key == MetadataKey {
			if metadata, err = parseMetadata(dec); err != nil {
				return nil, nil, err
			}
			continue
		}
		if key == "" {
			return nil, nil, errors.New("empty tensor name in header")
		}
		info, err := parseTensorInfo(dec, key)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", key, err)
		}
		infos = append(infos, info)
	}
	if _, err := dec.Token(); err != nil { // closing '}'
		return nil, nil, fmt.Errorf("invalid JSON header: %w", err)
	}
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, nil, fmt.Errorf("invalid JSON header after the top-level object: %w", err)
		}
		return nil, nil, fmt.Errorf("invalid JSON header: unexpected %s after the top-level object", describeToken(tok))
	}
	return infos, metadata, nil
}

// parseMetadata parses the "__metadata__" value: null or an object whose
// values are all strings.
func parseMetadata(dec *json.Decoder) (map[string]string, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON header: %w", err)
	}
	if tok == nil {
		return nil, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("%q is %s, want an object of strings", MetadataKey, describeToken(tok))
	}
	md := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON header: %w", err)
		}
		key, _ := tok.(string)
		if _, dup := md[key]; dup {
			return nil, fmt.Errorf("duplicate %s key %q", MetadataKey, key)
		}
		tok, err = dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON header: %w", err)
		}
		val, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("%s value for %q is %s, want a string", MetadataKey, key, describeToken(tok))
		}
		md[key] = val
	}
	if _, err := dec.Token(); err != nil { // closing '}'
		return nil, fmt.Errorf("invalid JSON header: %w", err)
	}
	return md, nil
}

// parseTensorInfo parses one {"dtype", "shape", "data_offsets"} object.
// Unknown fields are skipped, as the reference implementation does.
func parseTensorInfo(dec *json.Decoder, name string) (tensorInfo, error) {
	info := tensorInfo{name: name}
	tok, err := dec.Token()
	if err != nil {
		return info, fmt.Errorf("invalid JSON header: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return info, fmt.Errorf("tensor info is %s, want an object", describeToken(tok))
	}
	var haveDType, haveShape, haveOffsets bool
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return info, fmt.Errorf("invalid JSON header: %w", err)
		}
		field, _ := tok.(string)
		switch field {
		case "dtype":
			if haveDType {
				return info, errors.New(`duplicate field "dtype"`)
			}
			haveDType = true
			tok, err := dec.Token()
			if err != nil {
				return info, fmt.Errorf("invalid JSON header: %w", err)
			}
			s, ok := tok.(string)
			if !ok {
				return info, fmt.Errorf("dtype is %s, want a string", describeToken(tok))
			}
			if _, err := ElemSize(s); err != nil {
				return info, fmt.Errorf("unknown dtype %q", s)
			}
			info.dtype = s
		case "shape":
			if haveShape {
				return info, errors.New(`duplicate field "shape"`)
			}
			haveShape = true
			dims, err := parseIntArray(dec, "shape")
			if err != nil {
				return info, err
			}
			for i, d := range dims {
				if d < 0 {
					return info, fmt.Errorf("negative dimension %d at index %d in shape %v", d, i, dims)
				}
			}
			info.shape = dims
		case "data_offsets":
			if haveOffsets {
				return info, errors.New(`duplicate field "data_offsets"`)
			}
			haveOffsets = true
			offs, err := parseIntArray(dec, "data_offsets")
			if err != nil {
				return info, err
			}
			if len(offs) != 2 {
				return info, fmt.Errorf("data_offsets %v must be two non-negative integers [begin, end]", offs)
			}
			if offs[0] < 0 || offs[1] < 0 {
				return info, fmt.Errorf("data_offsets %v must be two non-negative integers [begin, end]", offs)
			}
			if offs[0] > offs[1] {
				return info, fmt.Errorf("data_offsets %v: begin is after end", offs)
			}
			info.begin, info.end = offs[0], offs[1]
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return info, fmt.Errorf("invalid JSON header: %w", err)
			}
		}
	}
	if _, err := dec.Token(); err != nil { // closing '}'
		return info, fmt.Errorf("invalid JSON header: %w", err)
	}
	switch {
	case !haveDType:
		return info, errors.New(`missing field "dtype"`)
	case !haveShape:
		return info, errors.New(`missing field "shape"`)
	case !haveOffsets:
		return info, errors.New(`missing field "data_offsets"`)
	}
	if info.shape == nil {
		info.shape = []int64{}
	}
	return info, nil
}

// parseIntArray parses a flat JSON array of integers that fit in int64.
func parseIntArray(dec *json.Decoder, field string) ([]int64, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("invalid JSON header: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("%s is %s, want an array of integers", field, describeToken(tok))
	}
	var out []int64
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON header: %w", err)
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s element %d is %s, want an integer", field, len(out), describeToken(tok))
		}
		v, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s element %d is %s, want an integer that fits in int64", field, len(out), num)
		}
		out = append(out, v)
	}
	if _, err := dec.Token(); err != nil { // closing ']'
		return nil, fmt.Errorf("invalid JSON header: %w", err)
	}
	return out, nil
}

// describeToken renders a JSON token for error messages.
func describeToken(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		switch v {
		case '{', '}':
			return "an object"
		case '[', ']':
			return "an array"
		}
		return "'" + v.String() + "'"
	case string:
		return "string " + strconv.Quote(v)
	case json.Number:
		return "number " + v.String()
	case bool:
		return "boolean " + strconv.FormatBool(v)
	}
	return fmt.Sprintf("%v", tok)
}
