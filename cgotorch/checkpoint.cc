// checkpoint.cc: activation checkpointing. A region's forward runs without
// grad (no activations kept); a graph node stands for it, holding only its
// inputs. Its backward asks Go to run the region again with grad on, then
// runs backward through the recomputed outputs (a reentrant backward, as
// torch.utils.checkpoint's use_reentrant=True does): parameters used inside
// the region accumulate their gradients there, and the inputs' gradients
// flow on through the node's edges.
#include "autograd_node.h"

#include <cstdlib>

#include "internal.h"

using cg::T;

namespace {

std::atomic<cg_recompute_fn> recompute_fn{nullptr};
std::atomic<cg_release_fn> release_fn{nullptr};

struct CheckpointBackward : public torch::autograd::Node {
  uintptr_t ctx = 0;
  std::vector<at::Tensor> inputs;  // detached: no reference cycle
  std::vector<bool> needs_grad;
  int n_out = 0;

  ~CheckpointBackward() override {
    if (auto f = release_fn.load()) f(ctx);
  }

  std::string name() const override { return "CheckpointBackward"; }

  void release_variables() override { inputs.clear(); }

  torch::autograd::variable_list apply(
      torch::autograd::variable_list &&grads) override {
    auto f = recompute_fn.load();
    if (f == nullptr) throw std::runtime_error("checkpoint: no recompute function");
    if (inputs.size() != needs_grad.size())
      throw std::runtime_error(
          "checkpoint: backward through a region twice needs retain_graph");
    at::AutoGradMode grad_on(true);
    std::vector<at::Tensor> ins(inputs.size());
    std::vector<cg_tensor> in_h(inputs.size(), nullptr);
    for (size_t i = 0; i < inputs.size(); i++) {
      ins[i] = inputs[i].detach();
      if (needs_grad[i]) ins[i].requires_grad_(true);
      in_h[i] = cg::wrap(ins[i]);  // the callee owns and frees these
    }
    std::vector<cg_tensor> out_h(n_out, nullptr);
    cg_err e = f(ctx, in_h.data(), static_cast<int>(in_h.size()), out_h.data(), n_out);
    std::vector<at::Tensor> outs(n_out);
    for (int j = 0; j < n_out; j++) {
      if (out_h[j] != nullptr) {
        outs[j] = out_h[j]->t;
        cg_tensor_free(out_h[j]);
      }
    }
    if (e != nullptr) {
      std::string msg(e);
      std::free(const_cast<char *>(e));
      throw std::runtime_error("checkpoint: recomputing the forward: " + msg);
    }
    std::vector<at::Tensor> bo, bg;
    for (int j = 0; j < n_out && j < static_cast<int>(grads.size()); j++) {
      if (!outs[j].defined() || !outs[j].requires_grad() || !grads[j].defined())
        continue;
      bo.push_back(outs[j]);
      bg.push_back(grads[j]);
    }
    if (!bo.empty()) torch::autograd::backward(bo, bg);
    torch::autograd::variable_list res(ins.size());
    for (size_t i = 0; i < ins.size(); i++)
      if (needs_grad[i]) res[i] = ins[i].grad();
    return res;
  }
};

}  // namespace

extern "C" {

cg_err cg_set_checkpoint_fns(cg_recompute_fn recompute, cg_release_fn release) {
  CG_TRY
  recompute_fn.store(recompute);
  release_fn.store(release);
  CG_CATCH
}

cg_err cg_checkpoint(uintptr_t ctx, const cg_tensor *inputs, int n_in,
                     const cg_tensor *outputs, int n_out, cg_tensor *out) {
  CG_TRY
  if (recompute_fn.load() == nullptr || release_fn.load() == nullptr)
    throw std::runtime_error("checkpoint: cg_set_checkpoint_fns was not called");
  if (n_in < 0 || n_out <= 0)
    throw std::invalid_argument("checkpoint: a region needs outputs");
  std::vector<at::Tensor> ins(n_in);
  for (int i = 0; i < n_in; i++) ins[i] = T(inputs[i]);
  std::vector<at::Tensor> outs(n_out);
  for (int j = 0; j < n_out; j++) {
    at::Tensor o = T(outputs[j]);
    if (!o.defined()) throw std::invalid_argument("checkpoint: undefined output");
    if (!o.is_floating_point() && !o.is_complex())
      throw std::invalid_argument(
          std::string("checkpoint: output ") + std::to_string(j) + " is " +
          cg::dtype_name(o.scalar_type()) +
          "; a checkpointed region returns floating-point tensors");
    // A fresh autograd identity for the output; an output that shares
    // storage with an input is cloned so that the input's own history is
    // never touched.
    at::Tensor d = o.detach();
    for (const auto &in : ins) {
      if (in.defined() && in.storage().is_alias_of(d.storage())) {
        d = d.clone();
        break;
      }
    }
    outs[j] = d;
  }
  auto node = cg::make_node<CheckpointBackward>();
  node->n_out = n_out;
  node->needs_grad.resize(n_in);
  node->inputs.resize(n_in);
  for (int i = 0; i < n_in; i++) {
    node->needs_grad[i] = ins[i].defined() && ins[i].requires_grad();
    node->inputs[i] = ins[i].defined() ? ins[i].detach() : at::Tensor();
  }
  node->set_next_edges(torch::autograd::collect_next_edges(ins));
  for (auto &o : outs) torch::autograd::set_history(o, node);
  for (int j = 0; j < n_out; j++) out[j] = cg::wrap(std::move(outs[j]));
  // Only now does the node own ctx (released when the node goes); an
  // error before this leaves ctx 0 in the node and ctx with the caller.
  node->ctx = ctx;
  CG_CATCH
}

}  // extern "C"
