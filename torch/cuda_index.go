package torch

// On CUDA an index out of range (an embedding id, a class target) is not
// an error but a device-side assert: the kernel aborts, and the CUDA
// context is lost for the rest of the process, every later CUDA call
// failing. On CPU libtorch checks the indices and throws, which golora
// returns as an error. So the ops that index by data check their indices
// on CUDA first, at the cost of two device-to-host syncs, and return the
// error CPU would give, naming the argument and the first bad value.
// (Embedding and LoraEmbedding check their ids in libcgotorch itself, on
// every device; EmbeddingPadded and the losses go through libtorch's
// dispatcher and are checked here.)

// cudaIndices reports whether t is a CUDA tensor whose values must be
// checked before an op indexes with them.
func cudaIndices(t *Tensor) bool {
	return t != nil && t.err == nil && !t.Closed() && t.Device().IsCUDA()
}

// checkIndexRange returns an error naming op and arg when a value of idx
// (an integer tensor) lies outside [0, n), not counting values equal to
// *ignore. what names the values in the message ("index", "target").
func checkIndexRange(op, arg, what string, idx *Tensor, n int64, ignore *int64) error {
	if idx.Numel() == 0 || n < 0 {
		return nil // n < 0: the op reports its other argument's problem
	}
	s := NewScope()
	defer s.Close()
	x := s.Borrow(idx)
	if ignore != nil {
		x = x.MaskedFill(x.EqScalar(float64(*ignore)), 0)
	}
	lo, err := x.Min().ItemInt()
	if err != nil {
		return err
	}
	hi, err := x.Max().ItemInt()
	if err != nil {
		return err
	}
	bad := hi
	if lo < 0 {
		bad = lo
	}
	if lo < 0 || hi >= n {
		if ignore != nil {
			return argErrorf(op, arg, "%s %d is out of bounds for %d classes (ignore index %d)", what, bad, n, *ignore)
		}
		return argErrorf(op, arg, "%s %d is out of range for %d embeddings", what, bad, n)
	}
	return nil
}

// classes is the number of classes of a loss's input: dimension 1, or 0
// for a 1-D input (one sample); -1 when the input cannot say.
func classes(input *Tensor) int64 {
	if input.Dim() == 1 {
		return input.SizeOf(0)
	}
	return input.SizeOf(1)
}

// cudaTargetsError is checkIndexRange for a loss's class targets, on CUDA
// only.
func cudaTargetsError(op string, input, target *Tensor, ignoreIndex int64) error {
	// Floating targets are class probabilities (CrossEntropy's soft
	// labels), not indices: nothing to check.
	if !cudaIndices(target) || target.DType().IsFloat() {
		return nil
	}
	return inScope(checkIndexRange(op, "target", "target", target, classes(input), &ignoreIndex), input, target)
}

// cudaEmbeddingError is checkIndexRange for embedding ids, on CUDA only.
func cudaEmbeddingError(op string, indices, weight *Tensor) error {
	if !cudaIndices(indices) {
		return nil
	}
	return inScope(checkIndexRange(op, "indices", "index", indices, weight.SizeOf(0), nil), indices, weight)
}

// inScope records err in the scope the op's result would have joined (the
// first operand's that has one), as a failed op does, and returns it.
func inScope(err error, operands ...*Tensor) error {
	if err == nil {
		return nil
	}
	for _, t := range operands {
		if s := t.Scope(); s != nil {
			s.fail(err)
			break
		}
	}
	return err
}
