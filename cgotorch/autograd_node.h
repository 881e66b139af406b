// autograd_node.h: making custom autograd graph nodes on both libtorch
// lines. Nodes were owned by std::shared_ptr (libtorch 1.x and earlier
// 2.x, freed with deleteNode) and are owned by c10::intrusive_ptr in later
// 2.x; these helpers pick the right one at compile time. Used by
// checkpoint.cc and lora_node.cc.
#ifndef GOLORA_CGOTORCH_AUTOGRAD_NODE_H
#define GOLORA_CGOTORCH_AUTOGRAD_NODE_H

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

#include <type_traits>

namespace cg {

template <typename B>
constexpr bool intrusive_nodes = std::is_base_of_v<c10::intrusive_ptr_target, B>;

// delete_node frees a shared_ptr-owned node the way libtorch does
// (deleteNode, found by argument-dependent lookup: it exists only where
// nodes are shared_ptr-owned).
template <typename B>
void delete_node(B *p) {
  deleteNode(p);
}

// make_node returns a new node N, owned the way this libtorch owns nodes.
template <typename N, typename B = torch::autograd::Node>
auto make_node() {
  if constexpr (intrusive_nodes<B>) {
    return c10::make_intrusive<N>();
  } else {
    return std::shared_ptr<N>(new N(), [](N *p) { delete_node<B>(p); });
  }
}

// self_ptr returns an owning pointer to a node from inside it (for
// SavedVariable::unpack).
template <typename B>
auto self_ptr(B *n) {
  if constexpr (intrusive_nodes<B>) {
    return n->getptr();
  } else {
    return n->shared_from_this();
  }
}

}  // namespace cg

#endif
