// Package reftest holds the helpers that the tests of torch, module and lora
// share to check golora against reference files written by PyTorch (the
// */testdata/gen_*.py generators, which share refs.py in this folder): the
// test device, the tolerances, the relative error, tensor comparisons, a
// record of the largest errors, loading a reference file, and a scope that
// closes with its test.
//
// It is imported by tests only. It may import torch but not module or lora,
// so that the tests of every package can use it.
package reftest

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/golora/golora/torch"
)

// DeviceEnv is the environment variable that names the device the reference
// tests run on: "cpu" (the default when unset or empty), "cuda" (CUDA device
// 0) or "cuda:N". Case and surrounding spaces are ignored. Inputs are moved
// there, the ops run there, and results are compared on the CPU. Asking for
// CUDA where libtorch has none fails the tests (it is an explicit request);
// it does not skip them.
const DeviceEnv = "GOLORA_TEST_DEVICE"

// ParseDevice parses a value of DeviceEnv. It returns an error that names
// DeviceEnv for anything but "", "cpu", "cuda" and "cuda:N" with N ≥ 0.
func ParseDevice(s string) (torch.Device, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "" || s == "cpu":
		return torch.CPU, nil
	case s == "cuda":
		return torch.CUDA(0), nil
	case strings.HasPrefix(s, "cuda:"):
		i, err := strconv.Atoi(s[len("cuda:"):])
		if err != nil || i < 0 {
			return torch.CPU, fmt.Errorf("%s=%q: bad CUDA index (want cpu, cuda or cuda:N)", DeviceEnv, s)
		}
		return torch.CUDA(i), nil
	}
	return torch.CPU, fmt.Errorf("%s=%q: want cpu, cuda or cuda:N", DeviceEnv, s)
}

var envDevice = sync.OnceValues(func() (torch.Device, error) {
	return ParseDevice(os.Getenv(DeviceEnv))
})

// Device returns the device named by DeviceEnv (read once per test binary).
// It fails t when the value is malformed, or names a CUDA device that
// libtorch cannot use.
func Device(t testing.TB) torch.Device {
	t.Helper()
	d, err := envDevice()
	require.NoError(t, err)
	if d.IsCUDA() {
		require.Truef(t, torch.CUDAIsAvailable(), "%s=%v but CUDA is not available to libtorch", DeviceEnv, d)
		require.Lessf(t, d.Index, torch.CUDADeviceCount(), "%s=%v: only %d CUDA devices", DeviceEnv, d, torch.CUDADeviceCount())
	}
	return d
}

// Tolerances: the largest relative error (see RelErr) accepted for a result.
//
// On the CPU golora and the Python reference run the same libtorch kernels,
// so the bounds are tight. On CUDA results are compared with the CPU
// reference: float32 gets 1e-5, because the reduction order of the CUDA
// kernels, cuBLAS and CUDA's own transcendental functions differ from the
// CPU's by a few ulps; float64 keeps 1e-12. Op-specific exceptions (conv2d
// in TF32 on CUDA) belong to the tests of that op.
const (
	TolFloat32     = 1e-6  // float32 on the CPU
	TolFloat64     = 1e-12 // float64 on the CPU
	TolFloat32CUDA = 1e-5  // float32 on CUDA, against the CPU reference
	TolFloat64CUDA = 1e-12 // float64 on CUDA, against the CPU reference
)

// Tolerance returns the largest relative error accepted for a result of
// dtype dt computed on dev: TolFloat32, TolFloat64, TolFloat32CUDA or
// TolFloat64CUDA. It returns 0 (exact) for other dtypes.
func Tolerance(dt torch.DType, dev torch.Device) float64 {
	switch dt {
	case torch.Float32:
		if dev.IsCUDA() {
			return TolFloat32CUDA
		}
		return TolFloat32
	case torch.Float64:
		if dev.IsCUDA() {
			return TolFloat64CUDA
		}
		return TolFloat64
	}
	return 0
}

// SettledLiveTensors runs the garbage collector until the tensors that
// earlier tests dropped without Close have been freed by their finalizers
// (torch.LiveTensors unchanged over three rounds in a row, or 100 rounds
// have passed), then returns torch.LiveTensors, the baseline of a leak
// check. One unchanged round was not enough on a loaded machine: the
// cleanup goroutine can lag a round behind the collector.
func SettledLiveTensors() int {
	prev, same := -1, 0
	for i := 0; i < 100; i++ {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
		n := torch.LiveTensors()
		if n == prev {
			if same++; same == 3 {
				return n
			}
		} else {
			same = 0
		}
		prev = n
	}
	return prev
}

// Scope returns a scope that is closed when t ends: the tensors made in it
// (torch.In(s), s.Own) and every result computed from them are freed then.
func Scope(t testing.TB) *torch.Scope {
	s := torch.NewScope()
	t.Cleanup(s.Close)
	return s
}
