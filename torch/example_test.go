package torch_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/golora/golora/torch"
)

// Multiply two 2×2 matrices. The values are small integers, exactly
// representable in float32, so the printed product is exact:
// [1 2; 3 4]·[5 6; 7 8] = [1·5+2·7 1·6+2·8; 3·5+4·7 3·6+4·8].
func ExampleTensor_MatMul() {
	a := torch.Must(torch.FromSlice([]float32{1, 2, 3, 4}, 2, 2))
	defer a.Close()
	b := torch.Must(torch.FromSlice([]float32{5, 6, 7, 8}, 2, 2))
	defer b.Close()

	c, err := a.MatMul(b)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	v := torch.Must(torch.ToSlice[float32](c))
	fmt.Println(c)
	fmt.Println(v)
	// Output:
	// Tensor(float32 [2 2] cpu)
	// [19 22 43 50]
}

// Inside NoGrad, autograd records nothing: results of ops on a tensor that
// requires grad do not require grad themselves, and the previous mode is
// back afterwards.
func ExampleNoGrad() {
	w := torch.Must(torch.FromSlice([]float32{0.5, -1.5}))
	defer w.Close()
	if err := w.SetRequiresGrad(true); err != nil {
		fmt.Println(err)
		return
	}

	err := torch.NoGrad(func() error {
		y, err := w.MulScalar(4)
		if err != nil {
			return err
		}
		defer y.Close()
		fmt.Println("inside: requires grad =", y.RequiresGrad(), torch.Must(torch.ToSlice[float32](y)))
		return nil
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	y := torch.Must(w.MulScalar(4))
	defer y.Close()
	fmt.Println("outside: requires grad =", y.RequiresGrad())
	// Output:
	// inside: requires grad = false [2 -6]
	// outside: requires grad = true
}

// Save tensors with metadata to a safetensors file and load them back.
func ExampleSaveSafetensors() {
	dir, err := os.MkdirTemp("", "golora-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "adapter.safetensors")

	w := torch.Must(torch.FromSlice([]float32{0.25, -0.5, 1, 2}, 2, 2))
	defer w.Close()
	ids := torch.Must(torch.FromSlice([]int64{3, 1, 4}))
	defer ids.Close()
	err = torch.SaveSafetensors(path,
		map[string]*torch.Tensor{"lora_a": w, "ids": ids},
		map[string]string{"rank": "2"})
	if err != nil {
		fmt.Println(err)
		return
	}

	loaded, meta, err := torch.LoadSafetensors(path)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer torch.CloseMap(loaded)
	fmt.Println("rank:", meta["rank"])
	fmt.Println(loaded["lora_a"], torch.Must(torch.ToSlice[float32](loaded["lora_a"])))
	fmt.Println(loaded["ids"], torch.Must(torch.ToSlice[int64](loaded["ids"])))
	// Output:
	// rank: 2
	// Tensor(float32 [2 2] cpu) [0.25 -0.5 1 2]
	// Tensor(int64 [3] cpu) [3 1 4]
}
