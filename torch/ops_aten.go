package torch

// The ops below are one line each over libtorch's dispatcher (see Op and
// Call): a new op needs no C code and no ABI change. Argument order and
// defaults are the ATen schema's, quoted above each group.

var (
	opCos, opSin, opRsqrt        = NewOp("aten::cos", ""), NewOp("aten::sin", ""), NewOp("aten::rsqrt", "")
	opReciprocal, opSquare       = NewOp("aten::reciprocal", ""), NewOp("aten::square", "")
	opClamp, opClampT            = NewOp("aten::clamp", ""), NewOp("aten::clamp", "Tensor")
	opMinimum                    = NewOp("aten::minimum", "")
	opCumsum                     = NewOp("aten::cumsum", "")
	opVar, opVarMean             = NewOp("aten::var", "correction"), NewOp("aten::var_mean", "correction")
	opVectorNorm                 = NewOp("aten::linalg_vector_norm", "")
	opMin                        = NewOp("aten::min", "")
	opMinDim                     = NewOp("aten::min", "dim")
	opPowT                       = NewOp("aten::pow", "Tensor_Tensor")
	opNe, opLt, opLe, opGt, opGe = NewOp("aten::ne", "Tensor"), NewOp("aten::lt", "Tensor"), NewOp("aten::le", "Tensor"),
		NewOp("aten::gt", "Tensor"), NewOp("aten::ge", "Tensor")
	opEqS, opNeS, opLtS, opLeS, opGtS, opGeS = NewOp("aten::eq", "Scalar"), NewOp("aten::ne", "Scalar"),
		NewOp("aten::lt", "Scalar"), NewOp("aten::le", "Scalar"), NewOp("aten::gt", "Scalar"), NewOp("aten::ge", "Scalar")
	opAnd, opOr, opNot = NewOp("aten::logical_and", ""), NewOp("aten::logical_or", ""), NewOp("aten::logical_not", "")

	opExpand, opRepeat             = NewOp("aten::expand", ""), NewOp("aten::repeat", "")
	opRepeatInterleave             = NewOp("aten::repeat_interleave", "self_int")
	opUnsqueeze                    = NewOp("aten::unsqueeze", "")
	opSqueeze, opSqueezeDim        = NewOp("aten::squeeze", ""), NewOp("aten::squeeze", "dim")
	opFlatten                      = NewOp("aten::flatten", "using_ints")
	opChunk, opSplit, opSplitSizes = NewOp("aten::chunk", ""), NewOp("aten::split", "Tensor"), NewOp("aten::split_with_sizes", "")
	opGather                       = NewOp("aten::gather", "")
	opScatter, opScatterValue      = NewOp("aten::scatter", "src"), NewOp("aten::scatter", "value")
	opWhere, opWhereScalar         = NewOp("aten::where", "self"), NewOp("aten::where", "ScalarOther")
	opTriu                         = NewOp("aten::triu", "")
	opOneHot                       = NewOp("aten::one_hot", "")
	opIndex                        = NewOp("aten::index", "Tensor")

	opZerosLike, opOnesLike, opFullLike  = NewOp("aten::zeros_like", ""), NewOp("aten::ones_like", ""), NewOp("aten::full_like", "")
	opRandLike, opRandnLike, opEmptyLike = NewOp("aten::rand_like", ""), NewOp("aten::randn_like", ""), NewOp("aten::empty_like", "")

	opTopk, opSort, opArgsort = NewOp("aten::topk", ""), NewOp("aten::sort", ""), NewOp("aten::argsort", "")
	opMultinomial             = NewOp("aten::multinomial", "")

	opConv1d        = NewOp("aten::conv1d", "")
	opEmbeddingFull = NewOp("aten::embedding", "")
	opCrossEntropy  = NewOp("aten::cross_entropy_loss", "")
	opNLLLoss       = NewOp("aten::nll_loss_nd", "")
	opSoftmaxDT     = NewOp("aten::softmax", "int")

	opMul_, opMulS_ = NewOp("aten::mul_", "Tensor"), NewOp("aten::mul_", "Scalar")
	opAdd_, opAddS_ = NewOp("aten::add_", "Tensor"), NewOp("aten::add_", "Scalar")
	opSub_          = NewOp("aten::sub_", "Tensor")
	opDiv_, opDivS_ = NewOp("aten::div_", "Tensor"), NewOp("aten::div_", "Scalar")
	opAddcmul_      = NewOp("aten::addcmul_", "")
	opAddcdiv_      = NewOp("aten::addcdiv_", "")
	opLerp_         = NewOp("aten::lerp_", "Scalar")
	opSqrt_         = NewOp("aten::sqrt_", "")
	opZero_         = NewOp("aten::zero_", "")
	opClamp_        = NewOp("aten::clamp_", "")
	opMaskedFill_   = NewOp("aten::masked_fill_", "Scalar")

	opForeachMul_     = NewOp("aten::_foreach_mul_", "Scalar")
	opForeachAdd_     = NewOp("aten::_foreach_add_", "List")
	opForeachAddcmul_ = NewOp("aten::_foreach_addcmul_", "Scalar")
	opForeachAddcdiv_ = NewOp("aten::_foreach_addcdiv_", "Scalar")
	opForeachLerp_    = NewOp("aten::_foreach_lerp_", "Scalar") // libtorch ≥ 2.0
	opForeachSqrt     = NewOp("aten::_foreach_sqrt", "")
	opForeachNorm     = NewOp("aten::_foreach_norm", "Scalar")
	opForeachZero_    = NewOp("aten::_foreach_zero_", "")
)

// ---- maths ----

// Cos returns cos(t).
func (t *Tensor) Cos() *Tensor { return opCos.Call1("Cos", t) }

// Sin returns sin(t).
func (t *Tensor) Sin() *Tensor { return opSin.Call1("Sin", t) }

// Rsqrt returns 1/√t.
func (t *Tensor) Rsqrt() *Tensor { return opRsqrt.Call1("Rsqrt", t) }

// Reciprocal returns 1/t.
func (t *Tensor) Reciprocal() *Tensor { return opReciprocal.Call1("Reciprocal", t) }

// Square returns t².
func (t *Tensor) Square() *Tensor { return opSquare.Call1("Square", t) }

// Clamp limits t to [min, max], like torch.clamp.
func (t *Tensor) Clamp(min, max float64) *Tensor { return opClamp.Call1("Clamp", t, min, max) }

// ClampMin limits t from below.
func (t *Tensor) ClampMin(min float64) *Tensor { return opClamp.Call1("ClampMin", t, min, nil) }

// ClampMax limits t from above.
func (t *Tensor) ClampMax(max float64) *Tensor { return opClamp.Call1("ClampMax", t, nil, max) }

// ClampTensor limits t elementwise by min and max (either may be nil).
func (t *Tensor) ClampTensor(min, max *Tensor) *Tensor {
	return opClampT.Call1("ClampTensor", t, min, max)
}

// Minimum returns the elementwise minimum of t and b.
func (t *Tensor) Minimum(b *Tensor) *Tensor { return opMinimum.Call1("Minimum", t, b) }

// Min returns the minimum of all elements.
func (t *Tensor) Min() *Tensor { return opMin.Call1("Min", t) }

// MinDim returns the minimum along dim and its indices.
func (t *Tensor) MinDim(dim int64, keepdim bool) (values, indices *Tensor) {
	return pair(opMinDim.CallN("MinDim", 2, t, dim, keepdim))
}

// PowTensor is Pow (t ** b, broadcasting); kept for symmetry with PowScalar.
func (t *Tensor) PowTensor(b *Tensor) *Tensor { return opPowT.Call1("PowTensor", t, b) }

// Cumsum returns the cumulative sum along dim.
func (t *Tensor) Cumsum(dim int64) *Tensor { return opCumsum.Call1("Cumsum", t, dim) }

// Var returns the variance over dims (all dims when nil) with the given
// correction (1 is Bessel's, PyTorch's default; 0 the biased variance).
func (t *Tensor) Var(dims []int64, correction int64, keepdim bool) *Tensor {
	return opVar.Call1("Var", t, optInts(dims), correction, keepdim)
}

// VarMean returns the variance and the mean over dims in one pass.
func (t *Tensor) VarMean(dims []int64, correction int64, keepdim bool) (variance, mean *Tensor) {
	return pair(opVarMean.CallN("VarMean", 2, t, optInts(dims), correction, keepdim))
}

// Norm returns the p-norm over dims (all elements when nil), like
// torch.linalg.vector_norm; gradient clipping uses p = 2.
func (t *Tensor) Norm(p float64, dims []int64, keepdim bool) *Tensor {
	return opVectorNorm.Call1("Norm", t, p, optInts(dims), keepdim)
}

// ---- comparisons (bool results) ----

// Ne returns t != b.
func (t *Tensor) Ne(b *Tensor) *Tensor { return opNe.Call1("Ne", t, b) }

// Lt returns t < b.
func (t *Tensor) Lt(b *Tensor) *Tensor { return opLt.Call1("Lt", t, b) }

// Le returns t <= b.
func (t *Tensor) Le(b *Tensor) *Tensor { return opLe.Call1("Le", t, b) }

// Gt returns t > b.
func (t *Tensor) Gt(b *Tensor) *Tensor { return opGt.Call1("Gt", t, b) }

// Ge returns t >= b.
func (t *Tensor) Ge(b *Tensor) *Tensor { return opGe.Call1("Ge", t, b) }

// EqScalar returns t == s.
func (t *Tensor) EqScalar(s float64) *Tensor { return opEqS.Call1("EqScalar", t, s) }

// NeScalar returns t != s.
func (t *Tensor) NeScalar(s float64) *Tensor { return opNeS.Call1("NeScalar", t, s) }

// LtScalar returns t < s.
func (t *Tensor) LtScalar(s float64) *Tensor { return opLtS.Call1("LtScalar", t, s) }

// LeScalar returns t <= s.
func (t *Tensor) LeScalar(s float64) *Tensor { return opLeS.Call1("LeScalar", t, s) }

// GtScalar returns t > s.
func (t *Tensor) GtScalar(s float64) *Tensor { return opGtS.Call1("GtScalar", t, s) }

// GeScalar returns t >= s.
func (t *Tensor) GeScalar(s float64) *Tensor { return opGeS.Call1("GeScalar", t, s) }

// LogicalAnd returns t && b (nonzero is true).
func (t *Tensor) LogicalAnd(b *Tensor) *Tensor { return opAnd.Call1("LogicalAnd", t, b) }

// LogicalOr returns t || b.
func (t *Tensor) LogicalOr(b *Tensor) *Tensor { return opOr.Call1("LogicalOr", t, b) }

// LogicalNot returns !t.
func (t *Tensor) LogicalNot() *Tensor { return opNot.Call1("LogicalNot", t) }

// ---- shapes ----

// Expand broadcasts size-1 dims to size (a view; -1 keeps a dim).
func (t *Tensor) Expand(size ...int64) *Tensor { return opExpand.Call1("Expand", t, size) }

// Repeat tiles t repeats[i] times along dim i (a copy).
func (t *Tensor) Repeat(repeats ...int64) *Tensor { return opRepeat.Call1("Repeat", t, repeats) }

// RepeatInterleave repeats each element (or slice along dim) n times in
// place, as grouped-query attention does with key/value heads.
func (t *Tensor) RepeatInterleave(n, dim int64) *Tensor {
	return opRepeatInterleave.Call1("RepeatInterleave", t, n, dim)
}

// Unsqueeze inserts a dim of size 1 at dim (a view).
func (t *Tensor) Unsqueeze(dim int64) *Tensor { return opUnsqueeze.Call1("Unsqueeze", t, dim) }

// Squeeze removes every dim of size 1 (a view).
func (t *Tensor) Squeeze() *Tensor { return opSqueeze.Call1("Squeeze", t) }

// SqueezeDim removes dim when its size is 1 (a view).
func (t *Tensor) SqueezeDim(dim int64) *Tensor { return opSqueezeDim.Call1("SqueezeDim", t, dim) }

// Flatten merges dims start..end (inclusive; negative counts from the end).
func (t *Tensor) Flatten(start, end int64) *Tensor { return opFlatten.Call1("Flatten", t, start, end) }

// Chunk splits t into n pieces along dim (the last may be smaller; fewer
// when the size does not allow n).
func (t *Tensor) Chunk(n, dim int64) []*Tensor {
	if n < 1 {
		return []*Tensor{failed(argErrorf("Chunk", "chunks", "must be positive, got %d", n))}
	}
	max := n
	if size := t.SizeOf(int(dim)); size > 0 && size < max {
		max = size // at most one piece per entry: no room for a huge n
	}
	return opChunk.CallN("Chunk", int(max), t, n, dim)
}

// Split splits t into pieces of size along dim (the last may be smaller).
func (t *Tensor) Split(size, dim int64) []*Tensor {
	n := t.SizeOf(int(dim))
	if size < 1 || n < 0 {
		return []*Tensor{opSplit.Call1("Split", t, size, dim)}
	}
	return opSplit.CallN("Split", int((n+size-1)/size)+1, t, size, dim)
}

// SplitSizes splits t along dim into pieces of the given sizes.
func (t *Tensor) SplitSizes(sizes []int64, dim int64) []*Tensor {
	return opSplitSizes.CallN("SplitSizes", len(sizes)+1, t, sizes, dim)
}

// Gather picks values along dim at int64 index, like torch.gather.
func (t *Tensor) Gather(dim int64, index *Tensor) *Tensor {
	return opGather.Call1("Gather", t, dim, index)
}

// Scatter returns t with src's values written along dim at index.
func (t *Tensor) Scatter(dim int64, index, src *Tensor) *Tensor {
	return opScatter.Call1("Scatter", t, dim, index, src)
}

// ScatterValue returns t with value written along dim at index.
func (t *Tensor) ScatterValue(dim int64, index *Tensor, value float64) *Tensor {
	return opScatterValue.Call1("ScatterValue", t, dim, index, value)
}

// Where returns a where cond (bool) is true, else b, like torch.where.
func Where(cond, a, b *Tensor) *Tensor { return opWhere.Call1("Where", cond, a, b) }

// WhereScalar returns a where cond is true, else the value b.
func WhereScalar(cond, a *Tensor, b float64) *Tensor {
	return opWhereScalar.Call1("WhereScalar", cond, a, b)
}

// Triu keeps the upper triangle (j >= i + diagonal) of the last two dims.
func (t *Tensor) Triu(diagonal int64) *Tensor { return opTriu.Call1("Triu", t, diagonal) }

// OneHot returns int64 one-hot rows for int64 class indices (numClasses -1
// infers it from the largest index).
func (t *Tensor) OneHot(numClasses int64) *Tensor { return opOneHot.Call1("OneHot", t, numClasses) }

// Index is advanced indexing t[i0, i1, ...] with int64 or bool index
// tensors; nil entries stand for ":".
func (t *Tensor) Index(indices ...*Tensor) *Tensor {
	return opIndex.Call1("Index", t, optTensors(indices))
}

// ---- creation like another tensor (same dtype and device; the result joins t's scope) ----

// ZerosLike returns zeros shaped like t.
func (t *Tensor) ZerosLike() *Tensor { return opZerosLike.Call1("ZerosLike", t) }

// OnesLike returns ones shaped like t.
func (t *Tensor) OnesLike() *Tensor { return opOnesLike.Call1("OnesLike", t) }

// FullLike returns value everywhere, shaped like t.
func (t *Tensor) FullLike(value float64) *Tensor { return opFullLike.Call1("FullLike", t, value) }

// RandLike returns U[0, 1) draws shaped like t.
func (t *Tensor) RandLike() *Tensor { return opRandLike.Call1("RandLike", t) }

// RandnLike returns N(0, 1) draws shaped like t.
func (t *Tensor) RandnLike() *Tensor { return opRandnLike.Call1("RandnLike", t) }

// EmptyLike returns uninitialised memory shaped like t.
func (t *Tensor) EmptyLike() *Tensor { return opEmptyLike.Call1("EmptyLike", t) }

// ---- sampling ----

// Topk returns the k largest (or smallest) values along dim and their
// indices, sorted.
func (t *Tensor) Topk(k, dim int64, largest bool) (values, indices *Tensor) {
	return pair(opTopk.CallN("Topk", 2, t, k, dim, largest, true))
}

// Sort sorts along dim and returns the values and their indices.
func (t *Tensor) Sort(dim int64, descending bool) (values, indices *Tensor) {
	return pair(opSort.CallN("Sort", 2, t, dim, descending))
}

// Argsort returns the indices that sort t along dim.
func (t *Tensor) Argsort(dim int64, descending bool) *Tensor {
	return opArgsort.Call1("Argsort", t, dim, descending)
}

// Multinomial draws n indices per row from the (unnormalised)
// probabilities t, using the default generator.
func (t *Tensor) Multinomial(n int64, replacement bool) *Tensor {
	return opMultinomial.Call1("Multinomial", t, n, replacement)
}

// ---- networks ----

// Conv1d applies a 1-D convolution: x (N, C, L), w (O, C/groups, k), b (O)
// or nil.
func Conv1d(x, w, b *Tensor, stride, padding, dilation, groups int64) *Tensor {
	return opConv1d.Call1("Conv1d", x, w, b, []int64{stride}, []int64{padding}, []int64{dilation}, groups)
}

// EmbeddingPadded is F.embedding(indices, weight, padding_idx): the row at
// paddingIdx is looked up as usual but gets no gradient. A negative
// paddingIdx counts from the end (-1 is the last row), as in F.embedding;
// use Embedding for no padding row.
func EmbeddingPadded(indices, weight *Tensor, paddingIdx int64) *Tensor {
	if n := weight.SizeOf(0); n >= 0 { // else (nil, failed, closed, 0-dim) the call reports weight's problem
		if paddingIdx < -n || paddingIdx >= n {
			return failed(argErrorf("EmbeddingPadded", "paddingIdx", "%d is out of range for %d embeddings", paddingIdx, n))
		}
		if paddingIdx < 0 {
			paddingIdx += n
		}
	}
	if err := cudaEmbeddingError("EmbeddingPadded", indices, weight); err != nil {
		return failed(err)
	}
	return opEmbeddingFull.Call1("EmbeddingPadded", weight, indices, paddingIdx)
}

// CrossEntropyOptions are F.cross_entropy's optional arguments. The zero
// value is PyTorch's default except IgnoreIndex: set it to -100 for
// PyTorch's default, or use DefaultCrossEntropy.
type CrossEntropyOptions struct {
	Weight         *Tensor // per-class weight (C), or nil
	Reduction      Reduction
	IgnoreIndex    int64
	LabelSmoothing float64
}

// DefaultCrossEntropy is PyTorch's default: mean, ignore_index -100, no
// smoothing.
var DefaultCrossEntropy = CrossEntropyOptions{Reduction: ReductionMean, IgnoreIndex: -100}

// CrossEntropyWith is F.cross_entropy with every option (label smoothing,
// class weights).
func CrossEntropyWith(logits, target *Tensor, o CrossEntropyOptions) *Tensor {
	if !(o.LabelSmoothing >= 0 && o.LabelSmoothing <= 1) { // NaN too, which libtorch 1.13 takes
		return failed(argErrorf("CrossEntropyWith", "label_smoothing", "must be in [0, 1], got %v", o.LabelSmoothing))
	}
	if err := cudaTargetsError("CrossEntropyWith", logits, target, o.IgnoreIndex); err != nil {
		return failed(err)
	}
	return opCrossEntropy.Call1("CrossEntropyWith", logits, target, o.Weight, int64(o.Reduction), o.IgnoreIndex, o.LabelSmoothing)
}

// NLLLoss is F.nll_loss over log-probabilities (N, C) or (N, C, …).
func NLLLoss(logProbs, target, weight *Tensor, r Reduction, ignoreIndex int64) *Tensor {
	if err := cudaTargetsError("NLLLoss", logProbs, target, ignoreIndex); err != nil {
		return failed(err)
	}
	return opNLLLoss.Call1("NLLLoss", logProbs, target, weight, int64(r), ignoreIndex)
}

// ---- in place (no new tensor; the result is t, or a failed value) ----

// Mul_ multiplies t by b in place.
func (t *Tensor) Mul_(b *Tensor) *Tensor { return opMul_.Inplace("Mul_", t, b) }

// MulScalar_ multiplies t by s in place.
func (t *Tensor) MulScalar_(s float64) *Tensor { return opMulS_.Inplace("MulScalar_", t, s) }

// Add_ adds alpha·b to t in place (alpha 1 is t += b).
func (t *Tensor) Add_(b *Tensor, alpha float64) *Tensor { return opAdd_.Inplace("Add_", t, b, alpha) }

// AddScalar_ adds s to t in place.
func (t *Tensor) AddScalar_(s float64) *Tensor { return opAddS_.Inplace("AddScalar_", t, s, 1.0) }

// Sub_ subtracts alpha·b from t in place.
func (t *Tensor) Sub_(b *Tensor, alpha float64) *Tensor { return opSub_.Inplace("Sub_", t, b, alpha) }

// Div_ divides t by b in place.
func (t *Tensor) Div_(b *Tensor) *Tensor { return opDiv_.Inplace("Div_", t, b) }

// DivScalar_ divides t by s in place.
func (t *Tensor) DivScalar_(s float64) *Tensor { return opDivS_.Inplace("DivScalar_", t, s) }

// Addcmul_ adds value·t1·t2 to t in place.
func (t *Tensor) Addcmul_(t1, t2 *Tensor, value float64) *Tensor {
	return opAddcmul_.Inplace("Addcmul_", t, t1, t2, value)
}

// Addcdiv_ adds value·t1/t2 to t in place.
func (t *Tensor) Addcdiv_(t1, t2 *Tensor, value float64) *Tensor {
	return opAddcdiv_.Inplace("Addcdiv_", t, t1, t2, value)
}

// Lerp_ moves t toward end by weight in place: t += weight·(end − t).
func (t *Tensor) Lerp_(end *Tensor, weight float64) *Tensor {
	return opLerp_.Inplace("Lerp_", t, end, weight)
}

// Sqrt_ takes the square root of t in place.
func (t *Tensor) Sqrt_() *Tensor { return opSqrt_.Inplace("Sqrt_", t) }

// Zero_ sets t to zero in place.
func (t *Tensor) Zero_() *Tensor { return opZero_.Inplace("Zero_", t) }

// Clamp_ limits t to [min, max] in place.
func (t *Tensor) Clamp_(min, max float64) *Tensor { return opClamp_.Inplace("Clamp_", t, min, max) }

// MaskedFill_ writes value where the bool mask is true, in place.
func (t *Tensor) MaskedFill_(mask *Tensor, value float64) *Tensor {
	if t.Err() == nil && mask != nil && mask.err == nil && !mask.Closed() && mask.DType() != Bool {
		return failed(argErrorf("MaskedFill_", "mask", "mask must be a bool tensor, got %v", mask.DType()))
	}
	return opMaskedFill_.Inplace("MaskedFill_", t, mask, value)
}

// ---- _foreach: one dispatcher call over a list of tensors ----
//
// These are the multi-tensor forms that optimizers use: one call updates a
// whole parameter list (libtorch's fused CUDA kernels; a loop on the CPU).
// The lists must have the same length; empty lists do nothing. The errors
// name the list and the entry at fault, e.g. "others[2]".

// foreachCheck validates the lists of a _foreach op before the call.
func foreachCheck(op string, names []string, lists ...[]*Tensor) error {
	n := len(lists[0])
	for k, l := range lists {
		if len(l) != n {
			return argErrorf(op, names[k], "has %d tensors but %s has %d", len(l), names[0], n)
		}
		for i, t := range l {
			switch {
			case t == nil:
				return argErrorf(op, argIndex(names[k], i), "nil tensor")
			case t.err != nil:
				return t.err
			case t.Closed():
				return argErrorf(op, argIndex(names[k], i), "use of closed tensor")
			}
		}
	}
	return nil
}

// ForeachMul_ multiplies every tensor of ts by s in place.
func ForeachMul_(ts []*Tensor, s float64) error {
	if err := foreachCheck("ForeachMul_", []string{"ts"}, ts); err != nil || len(ts) == 0 {
		return err
	}
	return opForeachMul_.Void("ForeachMul_", ts, s)
}

// ForeachAdd_ adds alpha·others[i] to ts[i] in place.
func ForeachAdd_(ts, others []*Tensor, alpha float64) error {
	if err := foreachCheck("ForeachAdd_", []string{"ts", "others"}, ts, others); err != nil || len(ts) == 0 {
		return err
	}
	return opForeachAdd_.Void("ForeachAdd_", ts, others, alpha)
}

// ForeachAddcmul_ adds value·t1[i]·t2[i] to ts[i] in place.
func ForeachAddcmul_(ts, t1, t2 []*Tensor, value float64) error {
	if err := foreachCheck("ForeachAddcmul_", []string{"ts", "t1", "t2"}, ts, t1, t2); err != nil || len(ts) == 0 {
		return err
	}
	return opForeachAddcmul_.Void("ForeachAddcmul_", ts, t1, t2, value)
}

// ForeachAddcdiv_ adds value·t1[i]/t2[i] to ts[i] in place.
func ForeachAddcdiv_(ts, t1, t2 []*Tensor, value float64) error {
	if err := foreachCheck("ForeachAddcdiv_", []string{"ts", "t1", "t2"}, ts, t1, t2); err != nil || len(ts) == 0 {
		return err
	}
	return opForeachAddcdiv_.Void("ForeachAddcdiv_", ts, t1, t2, value)
}

// ForeachLerp_ moves ts[i] toward ends[i] by weight in place. libtorch
// 1.13 has no aten::_foreach_lerp_: there it loops over Lerp_, and a
// failure part way leaves the entries before it updated.
func ForeachLerp_(ts, ends []*Tensor, weight float64) error {
	if err := foreachCheck("ForeachLerp_", []string{"ts", "ends"}, ts, ends); err != nil || len(ts) == 0 {
		return err
	}
	if opForeachLerp_.Available() {
		return opForeachLerp_.Void("ForeachLerp_", ts, ends, weight)
	}
	for i, t := range ts {
		if r := opLerp_.Inplace("ForeachLerp_", t, ends[i], weight); r.err != nil {
			return r.err
		}
	}
	return nil
}

// ForeachSqrt returns √ts[i] for every tensor (new tensors), or one failed
// tensor.
func ForeachSqrt(ts []*Tensor) []*Tensor {
	if err := foreachCheck("ForeachSqrt", []string{"ts"}, ts); err != nil {
		return []*Tensor{failed(err)}
	}
	if len(ts) == 0 {
		return nil
	}
	return opForeachSqrt.CallN("ForeachSqrt", len(ts), ts)
}

// ForeachNorm returns the p-norm of every tensor (0-dim tensors), as
// gradient clipping needs them, or one failed tensor.
func ForeachNorm(ts []*Tensor, p float64) []*Tensor {
	if err := foreachCheck("ForeachNorm", []string{"ts"}, ts); err != nil {
		return []*Tensor{failed(err)}
	}
	if len(ts) == 0 {
		return nil
	}
	return opForeachNorm.CallN("ForeachNorm", len(ts), ts, p)
}

// ForeachZero_ zeroes every tensor of ts in place.
func ForeachZero_(ts []*Tensor) error {
	if err := foreachCheck("ForeachZero_", []string{"ts"}, ts); err != nil || len(ts) == 0 {
		return err
	}
	return opForeachZero_.Void("ForeachZero_", ts)
}

// ---- helpers ----

// optInts passes nil as None (e.g. "all dims").
func optInts(dims []int64) any {
	if dims == nil {
		return nil
	}
	return dims
}

func pair(ts []*Tensor) (*Tensor, *Tensor) {
	if len(ts) == 1 {
		return ts[0], ts[0]
	}
	if len(ts) != 2 {
		err := newError("pair", "", "expected 2 results")
		return failed(err), failed(err)
	}
	return ts[0], ts[1]
}
