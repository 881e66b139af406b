package safetensors

import (
	"fmt"
	"math"
)

// DType names as they appear in a safetensors header.
const (
	F32  = "F32"  // IEEE 754 single precision
	F64  = "F64"  // IEEE 754 double precision
	F16  = "F16"  // IEEE 754 half precision
	BF16 = "BF16" // bfloat16
	I64  = "I64"  // signed 64-bit integer
	I32  = "I32"  // signed 32-bit integer
	I16  = "I16"  // signed 16-bit integer
	I8   = "I8"   // signed 8-bit integer
	U8   = "U8"   // unsigned 8-bit integer
	Bool = "BOOL" // boolean, one byte per element
)

// MetadataKey is the reserved header key holding the string-to-string
// metadata map; it cannot be used as a tensor name.
const MetadataKey = "__metadata__"

// MaxHeaderSize is the largest header length accepted by Decode, matching
// the reference implementation's MAX_HEADER_SIZE (100 MB).
const MaxHeaderSize = 100_000_000

// ElemSize returns the byte size of one element of dtype, or an error for an
// unknown dtype.
func ElemSize(dtype string) (int, error) {
	switch dtype {
	case F64, I64:
		return 8, nil
	case F32, I32:
		return 4, nil
	case F16, BF16, I16:
		return 2, nil
	case I8, U8, Bool:
		return 1, nil
	}
	return 0, fmt.Errorf("safetensors: unknown dtype %q", dtype)
}

// dtypeRank orders dtypes the way the reference writer does (its Dtype enum
// order); Encode lays out higher ranks first so larger-alignment data comes
// first in the buffer.
func dtypeRank(dtype string) int {
	switch dtype {
	case Bool:
		return 0
	case U8:
		return 1
	case I8:
		return 2
	case I16:
		return 3
	case F16:
		return 4
	case BF16:
		return 5
	case I32:
		return 6
	case F32:
		return 7
	case F64:
		return 8
	case I64:
		return 9
	}
	return -1
}

// byteSize validates dtype and shape and returns numel*elemsize. The element
// count is accumulated with overflow checks, like the reference's checked
// multiplication. Errors carry no "safetensors: " prefix; callers add context.
func byteSize(dtype string, shape []int64) (int64, error) {
	es, err := ElemSize(dtype)
	if err != nil {
		return 0, fmt.Errorf("unknown dtype %q", dtype)
	}
	numel := int64(1)
	for i, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d at index %d in shape %v", d, i, shape)
		}
		if d != 0 && numel > math.MaxInt64/d {
			return 0, fmt.Errorf("shape %v element count overflows int64", shape)
		}
		numel *= d
	}
	if numel > math.MaxInt64/int64(es) {
		return 0, fmt.Errorf("shape %v byte size overflows int64", shape)
	}
	return numel * int64(es), nil
}
