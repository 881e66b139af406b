package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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
// file. Every byte of a BOOL tensor must be 0 or 1. Errors start with
// "safetensors: " and name the offending tensor.
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
//
// Only regular files are accepted. The 8-byte length and the header are read
// and validated against the file's size before the byte buffer is read, so a
// malformed file is rejected without reading its data. The returned
// Entry.Data slices point into one buffer holding the file's byte buffer.
// Use Open to map a large file instead of reading it into memory.
func ReadFile(path string) (map[string]Entry, map[string]string, error) {
	f, h, err := openHeader(path)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	if h.dataLen > math.MaxInt {
		return nil, nil, fmt.Errorf("safetensors: %s: byte buffer of %d bytes does not fit in memory; use Open", path, h.dataLen)
	}
	data := make([]byte, h.dataLen)
	if err := readAt(f, data, h.dataStart); err != nil {
		return nil, nil, fmt.Errorf("safetensors: %s: read byte buffer: %w", path, err)
	}
	tensors, err := entries(h.infos, data)
	if err != nil {
		return nil, nil, fmt.Errorf("safetensors: %s: %w", path, err)
	}
	return tensors, h.metadata, nil
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
		return nil, nil, errTooShort(int64(len(buf)))
	}
	n := binary.LittleEndian.Uint64(buf[:8])
	if err := checkHeaderLen(n, int64(len(buf))); err != nil {
		return nil, nil, err
	}
	header := buf[8 : 8+n]
	data := buf[8+n:]

	infos, metadata, err := parseHeader(header)
	if err != nil {
		return nil, nil, err
	}
	if err := checkLayout(infos, int64(len(data))); err != nil {
		return nil, nil, err
	}
	tensors, err := entries(infos, data)
	if err != nil {
		return nil, nil, err
	}
	return tensors, metadata, nil
}

// errTooShort reports a file of size bytes, too short to hold the length
// prefix.
func errTooShort(size int64) error {
	return fmt.Errorf("file too short: %d bytes, need at least 8 for the header length", size)
}

// checkHeaderLen validates the header length n read from the prefix of a
// file of fileSize bytes (fileSize >= 8): it must not exceed MaxHeaderSize
// nor the bytes that follow the prefix.
func checkHeaderLen(n uint64, fileSize int64) error {
	if n > MaxHeaderSize {
		return fmt.Errorf("header length %d exceeds the %d-byte limit", n, MaxHeaderSize)
	}
	if n > uint64(fileSize-8) {
		return fmt.Errorf("header length %d exceeds file size (%d bytes after the length prefix)", n, fileSize-8)
	}
	return nil
}

// checkLayout validates every tensor's byte size against its dtype and shape
// and checks that the tensors tile a byte buffer of dataLen bytes exactly.
// It sorts infos by (begin, end, name).
func checkLayout(infos []tensorInfo, dataLen int64) error {
	for _, t := range infos {
		size, err := byteSize(t.dtype, t.shape)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", t.name, err)
		}
		if t.end-t.begin != size {
			return fmt.Errorf("tensor %q: data_offsets [%d %d] but %s %v needs %d bytes",
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
	var prevEnd int64
	prevName := ""
	for i, t := range infos {
		switch {
		case t.begin > prevEnd && i == 0:
			return fmt.Errorf("tensor %q: data_offsets [%d %d]: first tensor must begin at 0 (gap of %d bytes)",
				t.name, t.begin, t.end, t.begin)
		case t.begin > prevEnd:
			return fmt.Errorf("tensor %q: data_offsets [%d %d]: gap of %d bytes after tensor %q, which ends at %d",
				t.name, t.begin, t.end, t.begin-prevEnd, prevName, prevEnd)
		case t.begin < prevEnd:
			return fmt.Errorf("tensor %q: data_offsets [%d %d] overlap tensor %q, which ends at %d",
				t.name, t.begin, t.end, prevName, prevEnd)
		}
		if t.end > dataLen {
			return fmt.Errorf("file truncated: tensor %q: data_offsets [%d %d] but the byte buffer has only %d bytes",
				t.name, t.begin, t.end, dataLen)
		}
		prevEnd, prevName = t.end, t.name
	}
	if prevEnd != dataLen {
		return fmt.Errorf("byte buffer has %d bytes but tensors cover only %d: %d trailing bytes",
			dataLen, prevEnd, dataLen-prevEnd)
	}
	return nil
}

// entries builds the tensor map over data, the byte buffer infos were
// validated against by checkLayout, checking BOOL tensors' bytes.
func entries(infos []tensorInfo, data []byte) (map[string]Entry, error) {
	tensors := make(map[string]Entry, len(infos))
	for _, t := range infos {
		e := Entry{
			DType: t.dtype,
			Shape: t.shape,
			Data:  data[t.begin:t.end:t.end],
		}
		if e.DType == Bool {
			if err := checkBool(t.name, e.Data); err != nil {
				return nil, err
			}
		}
		tensors[t.name] = e
	}
	return tensors, nil
}

// checkBool reports the first byte of the BOOL tensor name's data that is
// neither 0 nor 1; the offset is relative to the start of the tensor.
func checkBool(name string, data []byte) error {
	// Test eight bytes at a time: a byte is 0 or 1 iff its high seven bits
	// are clear.
	i := 0
	for ; i+8 <= len(data); i += 8 {
		if binary.LittleEndian.Uint64(data[i:])&0xfefefefefefefefe != 0 {
			break
		}
	}
	for ; i < len(data); i++ {
		if b := data[i]; b > 1 {
			return fmt.Errorf("tensor %q: BOOL byte at offset %d is %d, want 0 or 1", name, i, b)
		}
	}
	return nil
}

// fileHeader is the validated header of a safetensors file on disk.
type fileHeader struct {
	size      int64        // file size
	dataStart int64        // file offset of the byte buffer: 8 + header length
	dataLen   int64        // byte buffer length
	infos     []tensorInfo // sorted by data_offsets
	metadata  map[string]string
}

// openHeader opens the regular file at path without blocking (a FIFO or a
// device is refused, never read), reads the 8-byte length and checks it
// against MaxHeaderSize and the file's size before reading just the header,
// then parses the header and checks the tensor layout against the size. The
// byte buffer is not read. Errors name the path but lack the "safetensors: "
// prefix; on error nothing stays open.
func openHeader(path string) (_ *os.File, _ *fileHeader, err error) {
	f, err := openNoBlock(path)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("%s: not a regular file (%s)", path, describeMode(fi.Mode()))
	}
	fail := func(err error) (*os.File, *fileHeader, error) {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	size := fi.Size()
	if size < 8 {
		return fail(errTooShort(size))
	}
	var prefix [8]byte
	if err := readAt(f, prefix[:], 0); err != nil {
		return fail(fmt.Errorf("read header length: %w", err))
	}
	n := binary.LittleEndian.Uint64(prefix[:])
	if err := checkHeaderLen(n, size); err != nil {
		return fail(err)
	}
	header := make([]byte, n)
	if err := readAt(f, header, 8); err != nil {
		return fail(fmt.Errorf("read header: %w", err))
	}
	infos, metadata, err := parseHeader(header)
	if err != nil {
		return fail(err)
	}
	h := &fileHeader{
		size:      size,
		dataStart: 8 + int64(n),
		dataLen:   size - 8 - int64(n),
		infos:     infos,
		metadata:  metadata,
	}
	if err := checkLayout(infos, h.dataLen); err != nil {
		return fail(err)
	}
	return f, h, nil
}

// readAt fills buf from f at off; a short file is io.ErrUnexpectedEOF.
func readAt(f *os.File, buf []byte, off int64) error {
	_, err := f.ReadAt(buf, off)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// describeMode names the kind of a non-regular file for error messages.
func describeMode(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "mode " + m.String()
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
