package torch

import "fmt"

// DType is a tensor element type. Its values are the C ABI's codes.
type DType int

// The element types golora supports.
const (
	Invalid  DType = -1
	Uint8    DType = 0
	Int32    DType = 3
	Int64    DType = 4
	Float16  DType = 5
	Float32  DType = 6
	Float64  DType = 7
	Bool     DType = 11
	BFloat16 DType = 15
)

var dtypeNames = map[DType]string{
	Uint8: "uint8", Int32: "int32", Int64: "int64", Float16: "float16",
	Float32: "float32", Float64: "float64", Bool: "bool", BFloat16: "bfloat16",
}

// String returns PyTorch's name for the type, e.g. "float32".
func (d DType) String() string {
	if s, ok := dtypeNames[d]; ok {
		return s
	}
	return fmt.Sprintf("DType(%d)", int(d))
}

// Valid reports whether d is one of the supported element types.
func (d DType) Valid() bool { _, ok := dtypeNames[d]; return ok }

// ElemSize returns the size of one element in bytes.
func (d DType) ElemSize() int {
	switch d {
	case Uint8, Bool:
		return 1
	case Float16, BFloat16:
		return 2
	case Int32, Float32:
		return 4
	case Int64, Float64:
		return 8
	}
	return 0
}

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool {
	return d == Float16 || d == BFloat16 || d == Float32 || d == Float64
}

func (DType) isTarget() {}

// Element is the set of Go types that map to a tensor element type.
type Element interface {
	float32 | float64 | int64 | int32 | uint8 | bool
}

// DTypeOf returns the tensor element type of the Go type T.
func DTypeOf[T Element]() DType {
	var z T
	switch any(z).(type) {
	case float32:
		return Float32
	case float64:
		return Float64
	case int64:
		return Int64
	case int32:
		return Int32
	case uint8:
		return Uint8
	case bool:
		return Bool
	}
	return Invalid
}
