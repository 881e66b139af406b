/*
 * cgotorch.h: the C ABI of golora over libtorch's C++ API.
 *
 * Rules every function follows:
 *   - It returns cg_err (const char *): NULL on success, otherwise a heap-allocated,
 *     NUL-terminated message that the caller frees with cg_free_error.
 *   - Results go out through pointer parameters; they are written only on
 *     success.
 *   - No C++ exception escapes. libtorch's messages are passed on without
 *     the C++ backtrace.
 *   - There is no thread-local "last error": callers may change OS threads
 *     between calls (goroutines do).
 *
 * Tensors are opaque handles (cg_tensor). Every handle returned through an
 * out-parameter is owned by the caller and freed with cg_tensor_free.
 */
#ifndef GOLORA_CGOTORCH_H
#define GOLORA_CGOTORCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CG_ABI_VERSION changes whenever a signature or an enum value changes.
 * The Go package refuses a libcgotorch.so whose version differs. */
#define CG_ABI_VERSION 5

typedef const char *cg_err;
typedef struct cg_tensor_s *cg_tensor;

/* dtype codes (match c10::ScalarType where they coincide; do not renumber). */
enum {
  CG_UINT8 = 0,
  CG_INT32 = 3,
  CG_INT64 = 4,
  CG_FLOAT16 = 5,
  CG_FLOAT32 = 6,
  CG_FLOAT64 = 7,
  CG_BOOL = 11,
  CG_BFLOAT16 = 15
};

/* device types */
enum { CG_CPU = 0, CG_CUDA = 1 };

/* ---- version.cc: library, errors, devices, threads, seeds ---- */
int cg_abi_version(void);
void cg_free_error(cg_err err);
cg_err cg_torch_version(const char **out); /* free with cg_free_error */
cg_err cg_cuda_is_available(int *out);
cg_err cg_cuda_device_count(int *out);
cg_err cg_cuda_synchronize(int device);
cg_err cg_set_num_threads(int n);
cg_err cg_get_num_threads(int *out);
cg_err cg_manual_seed(uint64_t seed);

/* ---- tensor.cc: lifetime, creation, readout, conversion ---- */
void cg_tensor_free(cg_tensor t);
/* cg_tensor_free_n frees n handles (NULL entries are skipped) in one call. */
void cg_tensor_free_n(const cg_tensor *ts, int n);
/* cg_from_bytes copies nbytes of row-major data into a new CPU tensor. */
cg_err cg_from_bytes(const void *data, size_t nbytes, const int64_t *shape,
                     int ndim, int dtype, cg_tensor *out);
/* cg_to_bytes copies the tensor (moved to CPU, made contiguous) into buf,
 * which must hold exactly nbytes = numel * element size. */
cg_err cg_to_bytes(cg_tensor t, void *buf, size_t nbytes);
/* kind: 0 zeros, 1 ones, 2 empty, 3 rand, 4 randn, 5 full(value) */
cg_err cg_new_filled(int kind, const int64_t *shape, int ndim, int dtype,
                     int device_type, int device_index, double value,
                     cg_tensor *out);
cg_err cg_arange(double start, double end, double step, int dtype,
                 int device_type, int device_index, cg_tensor *out);
/* cg_shape writes at most cap sizes into sizes and the dim into ndim. */
cg_err cg_shape(cg_tensor t, int64_t *sizes, int cap, int *ndim);
cg_err cg_dtype(cg_tensor t, int *out);
cg_err cg_device(cg_tensor t, int *device_type, int *device_index);
cg_err cg_item_double(cg_tensor t, double *out);
cg_err cg_item_int64(cg_tensor t, int64_t *out);
cg_err cg_to_device(cg_tensor t, int device_type, int device_index,
                    cg_tensor *out);
cg_err cg_to_dtype(cg_tensor t, int dtype, cg_tensor *out);
cg_err cg_clone(cg_tensor t, cg_tensor *out);
/* cg_copy_ copies src into dst in place (no autograd record). */
cg_err cg_copy_(cg_tensor dst, cg_tensor src);
cg_err cg_shallow_clone(cg_tensor t, cg_tensor *out);

/* ---- ops_math.cc: elementwise, reductions, shape ops ---- */
enum {
  CG_U_NEG = 0, CG_U_SQRT, CG_U_EXP, CG_U_LOG, CG_U_TANH, CG_U_SIGMOID,
  CG_U_RELU, CG_U_GELU, CG_U_SILU, CG_U_CONTIGUOUS, CG_U_T, CG_U_SUM,
  CG_U_MEAN, CG_U_MAX, CG_U_ABS, CG_U_GELU_TANH
};
/* cg_unary, cg_binary and cg_binary_scalar, the hot entry points, break
 * the rules above for speed: they take handles as integers (cg_ref) and
 * return the result and the error together (cg_result). Called from Go, a
 * pointer argument costs a check of cgo's pointer rules on every call, and
 * an out-parameter that and a heap allocation. On error out is NULL. */
typedef uintptr_t cg_ref; /* a cg_tensor, as an integer */
typedef struct {
  cg_tensor out;
  cg_err err;
} cg_result;
cg_result cg_unary(int op, cg_ref a);

enum {
  CG_B_ADD = 0, CG_B_SUB, CG_B_MUL, CG_B_DIV, CG_B_MATMUL, CG_B_MM,
  CG_B_POW, CG_B_EQ, CG_B_MAXIMUM
};
cg_result cg_binary(int op, cg_ref a, cg_ref b);
/* scalar forms: op is CG_B_ADD, SUB, MUL, DIV or POW */
cg_result cg_binary_scalar(int op, cg_ref a, double s);
/* cg_add_scaled_ adds alpha*b into a in place (no autograd record). */
cg_err cg_add_scaled_(cg_tensor a, cg_tensor b, double alpha);

/* reductions over dims: op is CG_U_SUM or CG_U_MEAN */
cg_err cg_reduce_dims(int op, cg_tensor a, const int64_t *dims, int ndims,
                      int keepdim, cg_tensor *out);
cg_err cg_max_dim(cg_tensor a, int64_t dim, int keepdim, cg_tensor *values,
                  cg_tensor *indices);
/* has_dim == 0: argmax over all elements */
cg_err cg_argmax(cg_tensor a, int has_dim, int64_t dim, int keepdim,
                 cg_tensor *out);
cg_err cg_softmax(cg_tensor a, int64_t dim, int log, cg_tensor *out);

cg_err cg_transpose(cg_tensor a, int64_t d0, int64_t d1, cg_tensor *out);
cg_err cg_permute(cg_tensor a, const int64_t *dims, int ndims, cg_tensor *out);
/* view != 0 uses view (no copy, fails on incompatible strides) */
cg_err cg_reshape(cg_tensor a, const int64_t *shape, int ndim, int view,
                  cg_tensor *out);
cg_err cg_narrow(cg_tensor a, int64_t dim, int64_t start, int64_t length,
                 cg_tensor *out);
cg_err cg_slice(cg_tensor a, int64_t dim, int64_t start, int64_t end,
                int64_t step, cg_tensor *out);
cg_err cg_index_select(cg_tensor a, int64_t dim, cg_tensor index,
                       cg_tensor *out);
/* stack != 0: torch::stack, else torch::cat */
cg_err cg_cat(const cg_tensor *ts, int n, int64_t dim, int stack,
              cg_tensor *out);
cg_err cg_tril(cg_tensor a, int64_t diagonal, cg_tensor *out);
cg_err cg_masked_fill(cg_tensor a, cg_tensor mask, double value,
                      cg_tensor *out);
cg_err cg_allclose(cg_tensor a, cg_tensor b, double rtol, double atol,
                   int *out);

/* ---- ops_nn.cc: layers and losses ---- */
/* bias may be NULL */
cg_err cg_linear(cg_tensor x, cg_tensor w, cg_tensor b, cg_tensor *out);
cg_err cg_embedding(cg_tensor weight, cg_tensor indices, cg_tensor *out);
/* cg_lora_linear computes linear(x, w, b) + (x A^T B^T) * scaling in one call. */
cg_err cg_lora_linear(cg_tensor x, cg_tensor w, cg_tensor b, cg_tensor a,
                      cg_tensor bm, double scaling, cg_tensor *out);
/* cg_lora_embedding computes embedding(x, w) + embedding(x, A^T) B^T * scaling. */
cg_err cg_lora_embedding(cg_tensor x, cg_tensor w, cg_tensor a, cg_tensor bm,
                         double scaling, cg_tensor *out);
/* weight and bias may be NULL */
cg_err cg_layer_norm(cg_tensor x, const int64_t *shape, int ndim,
                     cg_tensor w, cg_tensor b, double eps, cg_tensor *out);
cg_err cg_dropout(cg_tensor x, double p, int train, cg_tensor *out);
/* stride, padding, dilation: 2 values each; bias may be NULL */
cg_err cg_conv2d(cg_tensor x, cg_tensor w, cg_tensor b, const int64_t *stride,
                 const int64_t *padding, const int64_t *dilation,
                 int64_t groups, cg_tensor *out);
/* mask may be NULL; a bool mask marks positions that take part. */
cg_err cg_sdpa(cg_tensor q, cg_tensor k, cg_tensor v, cg_tensor mask,
               double dropout, int is_causal, cg_tensor *out);
/* reduction: 0 none, 1 mean, 2 sum */
cg_err cg_cross_entropy(cg_tensor logits, cg_tensor target,
                        int64_t ignore_index, int reduction, cg_tensor *out);
cg_err cg_mse_loss(cg_tensor a, cg_tensor b, int reduction, cg_tensor *out);

/* ---- autograd.cc ---- */
cg_err cg_set_requires_grad(cg_tensor t, int on);
cg_err cg_requires_grad(cg_tensor t, int *out);
cg_err cg_is_leaf(cg_tensor t, int *out);
/* grad may be NULL (scalar outputs) */
cg_err cg_backward(cg_tensor t, cg_tensor grad, int retain_graph);
/* *defined is 0 when the tensor has no gradient; *out is then untouched. */
cg_err cg_grad(cg_tensor t, cg_tensor *out, int *defined);
/* set_to_none != 0 drops the gradient, else zeroes it in place */
cg_err cg_zero_grad(cg_tensor t, int set_to_none);
cg_err cg_detach(cg_tensor t, cg_tensor *out);
cg_err cg_grad_enabled(int *out);
cg_err cg_set_grad_enabled(int on);

/* ---- init.cc: in-place initialisers (run without autograd) ---- */
cg_err cg_uniform_(cg_tensor t, double lo, double hi);
cg_err cg_normal_(cg_tensor t, double mean, double std);
cg_err cg_fill_(cg_tensor t, double value);
/* mode: 0 fan_in, 1 fan_out. nonlinearity: 0 leaky_relu, 1 relu, 2 linear,
 * 3 tanh, 4 sigmoid. */
cg_err cg_kaiming_(cg_tensor t, int normal, double a, int mode,
                   int nonlinearity);
cg_err cg_xavier_(cg_tensor t, int normal, double gain);


/* ---- dispatch.cc: any ATen operator by schema name (table-driven ops) ----
 *
 * cg_op_find resolves an operator such as ("aten::cos", "") or
 * ("aten::add", "Tensor") once; the handle lives as long as the process.
 * cg_op_call calls it through libtorch's dispatcher (autograd included),
 * exactly as TorchScript does. Arguments are given in schema order;
 * trailing arguments that are left out, and any of kind CG_ARG_DEFAULT,
 * take the schema's default (an error names an argument that has none).
 * Outputs are flattened: a Tensor, a Tensor[] and tuples of those give
 * their tensors in order; at most cap handles are written to outs and the
 * count goes to *nouts (more than cap is an error, nothing leaks). An op
 * that returns its input (in-place ops, Tensor(a!)) still returns a new
 * handle to it.
 */
typedef struct cg_op_s *cg_op;
enum {
  CG_ARG_DEFAULT = 0, /* use the schema's default */
  CG_ARG_NONE,        /* None, for optional arguments */
  CG_ARG_TENSOR,      /* t (NULL means None) */
  CG_ARG_INT,         /* i */
  CG_ARG_DOUBLE,      /* d */
  CG_ARG_BOOL,        /* i != 0 */
  CG_ARG_INTS,        /* ints[0..n) */
  CG_ARG_DOUBLES,     /* doubles[0..n) */
  CG_ARG_TENSORS,     /* tensors[0..n) (Tensor[]) */
  CG_ARG_STRING,      /* s */
  CG_ARG_DTYPE,       /* i is a CG_* dtype code (ScalarType) */
  CG_ARG_OPT_TENSORS  /* tensors[0..n), NULL entries are None (Tensor?[]) */
};
typedef struct {
  int kind;
  int n;
  int64_t i;
  double d;
  cg_tensor t;
  const int64_t *ints;
  const double *doubles;
  const cg_tensor *tensors;
  const char *s;
} cg_arg;
cg_err cg_op_find(const char *name, const char *overload, cg_op *out);
cg_err cg_op_call(cg_op op, const cg_arg *args, int nargs, cg_tensor *outs,
                  int cap, int *nouts);
/* cg_op_schema writes the operator's schema string (free with cg_free_error). */
cg_err cg_op_schema(cg_op op, const char **out);

/* ---- tensor.cc (v2) ---- */
/* cg_set_data replaces dst's data with src's (dtype, device, storage) while
 * keeping dst's identity, like tch's set_data: every handle to dst sees it. */
cg_err cg_set_data(cg_tensor dst, cg_tensor src);
/* cg_live_bytes: bytes of storage referenced by live handles (a view counts
 * its storage again); the Go safety net collects when it grows. */
int64_t cg_live_bytes(void);
/* cg_nbytes: numel * element size of t. */
cg_err cg_nbytes(cg_tensor t, int64_t *out);
/* cg_from_bytes_to is cg_from_bytes straight into dtype/device: data
 * (src_dtype, row-major, nbytes) is wrapped without a copy, then converted
 * once into the target (a CPU tensor of the same dtype is one memcpy). */
cg_err cg_from_bytes_to(const void *data, size_t nbytes, const int64_t *shape,
                        int ndim, int src_dtype, int dtype, int device_type,
                        int device_index, cg_tensor *out);

/* ---- rng.cc and warnings.cc (v2): RNG state, warnings ---- */
/* The generator state of a device (CPU, or a CUDA index) as a uint8 tensor,
 * and back; set validates the state's size. */
cg_err cg_rng_get_state(int device_type, int device_index, cg_tensor *out);
cg_err cg_rng_set_state(int device_type, int device_index, cg_tensor state);
/* cg_set_warning_handler routes libtorch's warnings (TORCH_WARN) to fn,
 * message without C++ source location; NULL restores stderr. libtorch's
 * handler is per thread, so every entry point installs it on its calling
 * thread; warnings raised on libtorch's own intra-op worker threads still
 * go to stderr. fn may be called from any thread. */
typedef void (*cg_warning_fn)(const char *msg, int deprecation);
cg_err cg_set_warning_handler(cg_warning_fn fn);

/* ---- tensor.cc (v3): loading from a file mapping ---- */
/* cg_from_mapped_to is cg_from_bytes_to for data that lies in a private or
 * shared file mapping (mmap): the copy runs in chunks of a few MiB, and when
 * evict is non-zero each chunk's whole pages are dropped from the resident
 * set (madvise MADV_DONTNEED) once copied, so that loading a file does not
 * hold the mapping and the copy at once. evict must be 0 for memory that is
 * not a file mapping. */
cg_err cg_from_mapped_to(const void *data, size_t nbytes, const int64_t *shape,
                         int ndim, int src_dtype, int dtype, int device_type,
                         int device_index, int evict, cg_tensor *out);

/* ---- checkpoint.cc (v3): activation checkpointing ---- */
/* A checkpointed region keeps its inputs instead of its activations; its
 * backward runs the region's forward again with grad on, then backward
 * through it (like torch.utils.checkpoint, reentrant variant).
 *
 * cg_recompute_fn recomputes region ctx: inputs are n_in new handles (owned
 * by the callee) to detached copies of the region's inputs, each requiring
 * grad as the original did; it writes n_out new handles (owned by
 * cgotorch) into outputs, or returns an error allocated with malloc.
 * cg_release_fn is called once when the region's graph node is destroyed
 * (after backward, or when the graph is dropped). Both may be called from
 * any thread, with grad mode on. */
typedef cg_err (*cg_recompute_fn)(uintptr_t ctx, cg_tensor *inputs, int n_in,
                                  cg_tensor *outputs, int n_out);
typedef void (*cg_release_fn)(uintptr_t ctx);
cg_err cg_set_checkpoint_fns(cg_recompute_fn recompute, cg_release_fn release);
/* cg_checkpoint records region ctx in the autograd graph: inputs (n_in) are
 * what its forward read, outputs (n_out) what it returned when run without
 * grad. out receives n_out new handles to the outputs' data whose grad_fn is
 * the region's node. On success the node owns ctx (cg_release_fn releases
 * it); on error the caller keeps it. */
cg_err cg_checkpoint(uintptr_t ctx, const cg_tensor *inputs, int n_in,
                     const cg_tensor *outputs, int n_out, cg_tensor *out);

/* ---- dist.cc (v4): c10d stores, process groups and collectives ---- */
/* A process group of world processes over a store that they share. Every
 * collective waits at most the group's timeout and then fails: a dead peer
 * is an error, not a hang. A build without Gloo's headers has every entry
 * point fail saying so; cg_dist_backends then returns 0. */
typedef struct cg_pg_s *cg_pg;
enum { CG_DIST_GLOO = 1, CG_DIST_NCCL = 2 }; /* backends (bits of cg_dist_backends) */
enum { CG_STORE_TCP = 0, CG_STORE_FILE = 1 };
int cg_dist_backends(void);
/* cg_pg_new joins a group. CG_STORE_TCP: a TCPStore at store_addr:port,
 * hosted by this process when is_server (it then waits for world
 * clients); CG_STORE_FILE: a FileStore at path store_addr (port unused).
 * Gloo binds to $GLOO_SOCKET_IFNAME when set, else to the address of this
 * host's name (loopback when that does not resolve), as PyTorch does. */
cg_err cg_pg_new(int backend, int store_kind, const char *store_addr, int port,
                 int is_server, int rank, int world, int64_t timeout_ms, cg_pg *out);
void cg_pg_free(cg_pg pg);
/* cg_pg_allreduce sums the n contiguous tensors across the group, in place,
 * then divides by the world size when average is set. The tensors travel
 * flattened in buckets of at most bucket_bytes (one collective per bucket). */
cg_err cg_pg_allreduce(cg_pg pg, const cg_tensor *ts, int n, int average,
                       int64_t bucket_bytes);
/* cg_pg_broadcast copies root's n tensors into every rank's, in place. */
cg_err cg_pg_broadcast(cg_pg pg, const cg_tensor *ts, int n, int root,
                       int64_t bucket_bytes);
/* cg_pg_allgather writes world new handles into outs: rank i's t at i. */
cg_err cg_pg_allgather(cg_pg pg, cg_tensor t, cg_tensor *outs);
cg_err cg_pg_barrier(cg_pg pg);

/* ---- optim.cc: fused optimizers, zero_grad, gradient clipping ----
 *
 * An optimizer's state (cg_optim) lives in C++: per parameter index, the
 * tensors of PyTorch's optimizer state, made on the first step that finds
 * the parameter with a gradient. The parameters themselves are not kept:
 * every call passes them again, in the same order, and they are updated
 * in place (no new tensors, so nothing that holds them goes stale). A step
 * runs PyTorch's single-tensor algorithm (torch/optim/sgd.py, adam.py,
 * adamw.py of the libtorch line it is built on, op for op) under
 * NoGradGuard over every parameter in one call; parameters without a
 * gradient are skipped.
 */
typedef struct cg_optim_s *cg_optim;
enum { CG_OPTIM_SGD = 0, CG_OPTIM_ADAM = 1, CG_OPTIM_ADAMW = 2 };
/* per-parameter state slots (PyTorch's state keys) */
enum {
  CG_STATE_STEP = 0,       /* "step": float32 scalar on the CPU */
  CG_STATE_EXP_AVG,        /* "exp_avg" */
  CG_STATE_EXP_AVG_SQ,     /* "exp_avg_sq" */
  CG_STATE_MAX_EXP_AVG_SQ, /* "max_exp_avg_sq" (amsgrad) */
  CG_STATE_MOMENTUM,       /* "momentum_buffer" (SGD with momentum) */
  CG_STATE_N
};
/* The hyperparameters of one parameter group; SGD reads lr, momentum,
 * dampening, weight_decay, nesterov and maximize, Adam and AdamW lr,
 * beta1, beta2, eps, weight_decay, amsgrad and maximize. */
typedef struct {
  double lr, momentum, dampening, weight_decay, beta1, beta2, eps;
  int nesterov, amsgrad, maximize;
} cg_optim_group;
/* cg_optim_new checks params[0..n) (leaf, floating point, dense, no
 * repeats) and makes an empty state for them; on a bad parameter *bad is
 * its index (else -1). */
cg_err cg_optim_new(int kind, const cg_tensor *params, int n, int *bad,
                    cg_optim *out);
void cg_optim_free(cg_optim o);
/* cg_optim_step takes one step: parameter i belongs to group group_of[i],
 * whose hyperparameters are groups[group_of[i]]. Shapes, dtypes and
 * devices of gradients and state are checked before anything changes; on
 * such an error *bad is the parameter's index (else -1). */
cg_err cg_optim_step(cg_optim o, const cg_tensor *params, int n,
                     const int *group_of, const cg_optim_group *groups,
                     int ngroups, int *bad);
/* cg_optim_get_state writes CG_STATE_N new handles to parameter i's state
 * tensors (sharing their memory), NULL for slots without state. */
cg_err cg_optim_get_state(cg_optim o, int i, cg_tensor *out);
/* cg_optim_set_state replaces the whole state at once: state[i*CG_STATE_N
 * + slot] (NULL: none) is copied into a new tensor of params[i]'s dtype and
 * device (step: a float32 CPU scalar). Shapes are checked first; on an
 * error nothing changes and *bad is the parameter's index (else -1). */
cg_err cg_optim_set_state(cg_optim o, const cg_tensor *params, int n,
                          const cg_tensor *state, int *bad);
/* cg_optim_state_bytes: bytes of the state tensors allocated so far. */
cg_err cg_optim_state_bytes(cg_optim o, int64_t *out);
/* cg_zero_grads drops (set_to_none != 0) or zeroes the gradients of
 * ts[0..n), PyTorch's zero_grad. */
cg_err cg_zero_grads(const cg_tensor *ts, int n, int set_to_none);
/* cg_clip_grad_norm is torch.nn.utils.clip_grad_norm_ over the gradients
 * of ts[0..n) (tensors without one are skipped): the norm_type-norm of the
 * per-gradient norms goes to *total, and every gradient is multiplied in
 * place by min(max_norm / (total + 1e-6), 1). */
cg_err cg_clip_grad_norm(const cg_tensor *ts, int n, double max_norm,
                         double norm_type, double *total);
/* cg_clip_grad_value is torch.nn.utils.clip_grad_value_: every gradient
 * clamped in place to [-clip, clip]. */
cg_err cg_clip_grad_value(const cg_tensor *ts, int n, double clip);


/* ---- autocast.cc: mixed precision (per OS thread, like grad mode) ----
 * cg_autocast_enter turns autocast on (enabled != 0, dtype bfloat16 or
 * float16) or off for a device type on the calling thread and enters a
 * region; cg_autocast_exit leaves it, restoring the state that
 * cg_autocast_get returned before, and clears the cast cache when the
 * outermost region ends, as torch.autocast does. */
cg_err cg_autocast_get(int device_type, int *enabled, int *dtype);
cg_err cg_autocast_enter(int device_type, int enabled, int dtype);
cg_err cg_autocast_exit(int device_type, int prev_enabled, int prev_dtype);

/* ---- cpu_cache.cc: the caching allocator for large CPU blocks ----
 * Installed as libtorch's CPU allocator when the library loads. Freed blocks
 * of 1 MiB or more wait in a cache, by size class, for the next request of
 * their class; at most `limit` bytes wait (least recently freed go first).
 * The limit starts at a quarter of physical memory, at most 2 GiB, or at
 * GOLORA_CPU_CACHE_MIB mebibytes when that is set (0: no caching). */
void cg_cpu_cache_set_limit(int64_t bytes); /* 0 turns caching off */
void cg_cpu_cache_empty(void);              /* frees every cached block */
/* cached: bytes waiting now; hits and misses: requests of >= 1 MiB since load */
void cg_cpu_cache_stats(int64_t *cached, int64_t *limit, int64_t *hits,
                        int64_t *misses);
/* 1 when libtorch's CPU allocator is this cache (0: another took its place) */
int cg_cpu_cache_installed(void);

#ifdef __cplusplus
}
#endif

#endif
