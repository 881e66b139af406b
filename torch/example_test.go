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
	s := torch.NewScope()
	defer s.Close() // frees a, b and c
	a := s.Own(torch.FromSlice([]float32{1, 2, 3, 4}, 2, 2))
	b := s.Own(torch.FromSlice([]float32{5, 6, 7, 8}, 2, 2))

	c := a.MatMul(b)
	v, err := torch.ToSlice[float32](c)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c)
	fmt.Println(v)
	// Output:
	// Tensor(float32 [2 2] cpu)
	// [19 22 43 50]
}

// Ops chain, and errors stick: the first failure (here a shape mismatch in
// Linear) is carried through the rest of the chain, which does nothing,
// and is checked once at the end.
func ExampleTensor_Err() {
	s := torch.NewScope()
	defer s.Close()
	x := torch.Ones([]int64{2, 3}, torch.In(s))
	w := torch.Ones([]int64{4, 5}, torch.In(s)) // should be (4, 3)

	y := x.Linear(w, nil).Gelu().SumDims([]int64{1}, false)
	if e, ok := torch.AsError(y.Err()); ok {
		fmt.Println("op:", e.Op)
		fmt.Println("scope saw it too:", s.Err() == y.Err())
	}
	// Output:
	// op: Linear
	// scope saw it too: true
}

// A function that builds a result from many intermediates returns it with
// Done: every intermediate is freed and the result moves to the parent
// scope. Results join the scope of their first operand, so the function
// borrows its input (a second handle, owned by its scope) to compute in
// its own scope.
func ExampleScope_Done() {
	outer := torch.NewScope()
	defer outer.Close()
	x := outer.Own(torch.FromSlice([]float32{0, 2}))

	softplus := func(parent *torch.Scope, x *torch.Tensor) (*torch.Tensor, error) {
		s := parent.Child()
		defer s.Close()                           // frees everything on error too
		x = s.Borrow(x)                           // ops on x now put their results in s
		return s.Done(x.Exp().AddScalar(1).Log()) // log(1 + eˣ)
	}

	y, err := softplus(outer, x)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%.4f\n", torch.Must(torch.ToSlice[float32](y)))
	fmt.Println("y belongs to outer:", y.Scope() == outer, "; outer holds", outer.Len(), "tensors")
	// Output:
	// [0.6931 2.1269]
	// y belongs to outer: true ; outer holds 2 tensors
}

// WithScope is Done in one call; a panic inside still frees the scope.
func ExampleWithScope() {
	mean, err := torch.WithScope(func(s *torch.Scope) *torch.Tensor {
		x := torch.Arange(1, 5, 1, torch.In(s)) // [1 2 3 4]
		return x.Mul(x).Mean()
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer mean.Close()
	v, _ := mean.Item()
	fmt.Println(v)
	// Output:
	// 7.5
}

// Call reaches any ATen operator by schema name through libtorch's
// dispatcher, with autograd: here aten::cumsum(Tensor self, int dim, *,
// ScalarType? dtype=None).
func ExampleCall() {
	s := torch.NewScope()
	defer s.Close()
	x := s.Own(torch.FromSlice([]int64{1, 2, 3, 4}))
	out, err := torch.Call("aten::cumsum", "", x, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(torch.Must(torch.ToSlice[int64](out[0])))
	// Output:
	// [1 3 6 10]
}

// Saving the generator's state and restoring it replays the same draws,
// as a resumed training run needs.
func ExampleRNGState() {
	s := torch.NewScope()
	defer s.Close()
	state := s.Own(torch.RNGState(torch.CPU))
	a := torch.Randn([]int64{3}, torch.In(s))
	if err := torch.SetRNGState(torch.CPU, state); err != nil {
		fmt.Println(err)
		return
	}
	b := torch.Randn([]int64{3}, torch.In(s))
	same, err := a.AllClose(b, 0, 0)
	fmt.Println(same, err)
	// Output:
	// true <nil>
}

// Inside NoGrad, autograd records nothing: results of ops on a tensor that
// requires grad do not require grad themselves, and the previous mode is
// back afterwards.
func ExampleNoGrad() {
	s := torch.NewScope()
	defer s.Close()
	w := s.Own(torch.FromSlice([]float32{0.5, -1.5}))
	if err := w.SetRequiresGrad(true); err != nil {
		fmt.Println(err)
		return
	}

	err := torch.NoGrad(func() error {
		y := w.MulScalar(4)
		v, err := torch.ToSlice[float32](y)
		fmt.Println("inside: requires grad =", y.RequiresGrad(), v)
		return err
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("outside: requires grad =", w.MulScalar(4).RequiresGrad())
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

	s := torch.NewScope()
	defer s.Close()
	w := s.Own(torch.FromSlice([]float32{0.25, -0.5, 1, 2}, 2, 2))
	ids := s.Own(torch.FromSlice([]int64{3, 1, 4}))
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
