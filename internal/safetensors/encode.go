package safetensors

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/golora/golora/internal/atomicfile"
)

// Entry is one tensor: DType is a header dtype name (F32, BF16, ...), Shape
// the dimensions (empty for a scalar), and Data the little-endian raw bytes
// in row-major order, exactly numel*ElemSize(DType) bytes long.
type Entry struct {
	DType string
	Shape []int64
	Data  []byte
}

// Encode writes tensors and metadata to w in safetensors format.
//
// Every entry is validated first (non-empty valid UTF-8 name other than
// "__metadata__", known dtype, non-negative shape, len(Data) equal to
// numel*elemsize, BOOL bytes 0 or 1); nothing is written if validation
// fails. Tensors are laid
// out contiguously, ordered by dtype (widest first, as the reference writer
// does) then by name, and the header is padded with spaces so the byte buffer
// starts 8-byte aligned. Metadata keys are written sorted, and a nil or empty
// metadata map omits "__metadata__", so output is deterministic.
func Encode(w io.Writer, tensors map[string]Entry, metadata map[string]string) error {
	if err := encode(w, tensors, metadata); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// encode implements Encode; its errors carry no "safetensors: " prefix.
func encode(w io.Writer, tensors map[string]Entry, metadata map[string]string) error {
	header, order, err := buildHeader(tensors, metadata)
	if err != nil {
		return err
	}
	return writeEncoded(w, header, order, tensors)
}

// writeEncoded writes a header made by buildHeader and the tensors' data
// in its order.
func writeEncoded(w io.Writer, header []byte, order []string, tensors map[string]Entry) error {
	bw := bufio.NewWriter(w)
	var prefix [8]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(header)))
	if _, err := bw.Write(prefix[:]); err != nil {
		return fmt.Errorf("write header length: %w", err)
	}
	if _, err := bw.Write(header); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	for _, name := range order {
		if _, err := bw.Write(tensors[name].Data); err != nil {
			return fmt.Errorf("write tensor %q: %w", name, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// buildHeader validates the inputs and returns the padded JSON header and the
// order in which tensor data must follow it.
func buildHeader(tensors map[string]Entry, metadata map[string]string) ([]byte, []string, error) {
	order := make([]string, 0, len(tensors))
	for name, e := range tensors {
		if _, err := checkEntry(name, e); err != nil {
			return nil, nil, err
		}
		order = append(order, name)
	}
	sort.Slice(order, func(i, j int) bool {
		ri, rj := dtypeRank(tensors[order[i]].DType), dtypeRank(tensors[order[j]].DType)
		if ri != rj {
			return ri > rj
		}
		return order[i] < order[j]
	})

	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	if len(metadata) > 0 {
		if err := checkMetadata(metadata); err != nil {
			return nil, nil, err
		}
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		writeJSONString(&buf, MetadataKey)
		buf.WriteString(":{")
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeJSONString(&buf, k)
			buf.WriteByte(':')
			writeJSONString(&buf, metadata[k])
		}
		buf.WriteByte('}')
		first = false
	}
	var offset int64
	for _, name := range order {
		e := tensors[name]
		if !first {
			buf.WriteByte(',')
		}
		first = false
		writeJSONString(&buf, name)
		buf.WriteString(`:{"dtype":`)
		writeJSONString(&buf, e.DType)
		buf.WriteString(`,"shape":[`)
		for i, d := range e.Shape {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(strconv.FormatInt(d, 10))
		}
		end := offset + int64(len(e.Data))
		fmt.Fprintf(&buf, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	buf.WriteByte('}')
	for buf.Len()%8 != 0 {
		buf.WriteByte(' ')
	}
	if buf.Len() > MaxHeaderSize {
		return nil, nil, fmt.Errorf("header is %d bytes, more than the %d-byte limit", buf.Len(), MaxHeaderSize)
	}
	return buf.Bytes(), order, nil
}

// checkEntry validates one tensor for writing (name, dtype, shape, data
// length, and BOOL bytes) and returns its byte size.
func checkEntry(name string, e Entry) (int64, error) {
	if err := validateName(name); err != nil {
		return 0, err
	}
	size, err := byteSize(e.DType, e.Shape)
	if err != nil {
		return 0, fmt.Errorf("tensor %q: %w", name, err)
	}
	if int64(len(e.Data)) != size {
		return 0, fmt.Errorf("tensor %q: data has %d bytes but %s %v needs %d bytes",
			name, len(e.Data), e.DType, e.Shape, size)
	}
	if e.DType == Bool {
		if err := checkBool(name, e.Data); err != nil {
			return 0, err
		}
	}
	return size, nil
}

// checkMetadata checks that metadata keys and values are valid UTF-8.
func checkMetadata(metadata map[string]string) error {
	for k, v := range metadata {
		if !utf8.ValidString(k) {
			return fmt.Errorf("metadata key %q is not valid UTF-8", k)
		}
		if !utf8.ValidString(v) {
			return fmt.Errorf("metadata %q: value is not valid UTF-8", k)
		}
	}
	return nil
}

// validateName checks a tensor name for writing.
func validateName(name string) error {
	switch {
	case name == "":
		return errors.New("empty tensor name")
	case name == MetadataKey:
		return fmt.Errorf("tensor name %q is reserved for metadata", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("tensor name %q is not valid UTF-8", name)
	}
	return nil
}

// writeJSONString writes s as a JSON string literal without HTML escaping,
// matching the reference (serde_json) output for ordinary names.
func writeJSONString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	// Encoding a string into a bytes.Buffer cannot fail.
	_ = enc.Encode(s)
	buf.Truncate(buf.Len() - 1) // drop the newline Encode appends
}

// WriteFile encodes tensors and metadata to path atomically, with
// atomicfile.Write: to a temporary file in the same directory
// (".<base>.tmp-<digits>", which no loader mistakes for a checkpoint),
// fsynced, renamed over path, and the directory fsynced, so readers never
// observe a partially written file and a crash (even SIGKILL) part way
// leaves the previous file whole. Everything is validated before the
// temporary file is created. On any error the temporary file is removed,
// path is left untouched, and the error names path and the cause (a full
// disk wraps syscall.ENOSPC). The file is created with mode 0644.
func WriteFile(path string, tensors map[string]Entry, metadata map[string]string) error {
	if err := writeFile(path, tensors, metadata); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// writeFile implements WriteFile; its errors lack the "safetensors: " prefix.
func writeFile(path string, tensors map[string]Entry, metadata map[string]string) error {
	header, order, err := buildHeader(tensors, metadata)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		return writeEncoded(w, header, order, tensors)
	})
}
