package torch

/*
#include "cgotorch.h"
*/
import "C"

import "fmt"

// DeviceType is the kind of a device.
type DeviceType int

// Device types, as the C ABI numbers them.
const (
	CPUDevice  DeviceType = 0
	CUDADevice DeviceType = 1
)

// Device says where a tensor's memory lives.
type Device struct {
	Type  DeviceType
	Index int
}

// CPU is the host device.
var CPU = Device{Type: CPUDevice}

// CUDA returns the i-th CUDA device.
func CUDA(i int) Device { return Device{Type: CUDADevice, Index: i} }

// String returns PyTorch's name for the device: "cpu" or "cuda:0".
func (d Device) String() string {
	if d.Type == CUDADevice {
		return fmt.Sprintf("cuda:%d", d.Index)
	}
	return "cpu"
}

// IsCUDA reports whether d is a CUDA device.
func (d Device) IsCUDA() bool { return d.Type == CUDADevice }

func (Device) isTarget() {}

// Target is what To converts a tensor to: a Device or a DType.
type Target interface{ isTarget() }

// CUDAIsAvailable reports whether libtorch can use a CUDA device.
func CUDAIsAvailable() bool {
	var v C.int
	return check("CUDAIsAvailable", C.cg_cuda_is_available(&v)) == nil && v != 0
}

// CUDADeviceCount returns the number of visible CUDA devices.
func CUDADeviceCount() int {
	var v C.int
	if check("CUDADeviceCount", C.cg_cuda_device_count(&v)) != nil {
		return 0
	}
	return int(v)
}

// Synchronize waits for all work queued on CUDA device i to finish.
func Synchronize(i int) error {
	return check("Synchronize", C.cg_cuda_synchronize(C.int(i)))
}

// SetNumThreads sets the number of threads libtorch uses for intra-op
// parallelism.
func SetNumThreads(n int) error {
	return check("SetNumThreads", C.cg_set_num_threads(C.int(n)))
}

// NumThreads returns the number of intra-op threads.
func NumThreads() int {
	var v C.int
	if check("NumThreads", C.cg_get_num_threads(&v)) != nil {
		return 0
	}
	return int(v)
}

// ManualSeed seeds the CPU generator and every CUDA generator, like
// Python's torch.manual_seed. Seeded draws equal PyTorch's exactly.
func ManualSeed(seed uint64) error {
	return check("ManualSeed", C.cg_manual_seed(C.uint64_t(seed)))
}
