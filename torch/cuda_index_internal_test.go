package torch

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The index check that guards CUDA's ops is device-agnostic: run here on
// CPU tensors, it accepts what libtorch's CPU kernels accept and names the
// first bad value the way their errors do.
func TestCheckIndexRange(t *testing.T) {
	s := NewScope()
	defer s.Close()
	ids := s.Own(FromSlice([]int64{0, 3, 2, 1}, 2, 2))
	require.NoError(t, checkIndexRange("Embedding", "indices", "index", ids, 4, nil))
	err := checkIndexRange("Embedding", "indices", "index", ids, 3, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Embedding")
	assert.Contains(t, err.Error(), "indices")
	assert.Contains(t, err.Error(), "index 3 is out of range for 3 embeddings")

	neg := s.Own(FromSlice([]int64{2, -1, 5}))
	err = checkIndexRange("Embedding", "indices", "index", neg, 10, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "index -1 is out of range", "a negative index is named before a large one")

	ignore := int64(-100)
	tgt := s.Own(FromSlice([]int64{1, -100, 0, 2}))
	require.NoError(t, checkIndexRange("CrossEntropy", "target", "target", tgt, 3, &ignore), "the ignore index is not a class")
	bad := s.Own(FromSlice([]int64{1, -100, 7, 2}))
	err = checkIndexRange("CrossEntropy", "target", "target", bad, 3, &ignore)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "target 7 is out of bounds for 3 classes (ignore index -100)")

	empty := s.Own(Zeros([]int64{0}, WithDType(Int64)))
	assert.NoError(t, checkIndexRange("CrossEntropy", "target", "target", empty, 3, &ignore))

	// The classes of a loss's input: dimension 1, or 0 for one sample.
	assert.Equal(t, int64(5), classes(s.Own(Zeros([]int64{4, 5, 7}))))
	assert.Equal(t, int64(5), classes(s.Own(Zeros([]int64{5}))))

	// On CPU the guard stays out of the way: libtorch's own check runs.
	assert.False(t, cudaIndices(ids))
	assert.NoError(t, cudaTargetsError("CrossEntropy", s.Own(Zeros([]int64{4, 3})), bad, ignore))
	require.NoError(t, s.Err())

	// A failed check is recorded in the operands' scope, as a failed op is.
	s2 := NewScope()
	defer s2.Close()
	x := s2.Own(Ones([]int64{2}))
	require.Error(t, inScope(err, x))
	assert.Equal(t, err, s2.Err())
}
