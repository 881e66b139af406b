// dispatch.cc: any operator by schema name, called through libtorch's
// dispatcher with a boxed stack (as TorchScript calls them).
//
// cg_op_find reads the schema once and keeps, per argument, what it accepts
// and its default, so that cg_op_call does no string work and no lookups:
// one switch per argument, one heap stack, callBoxed, the outputs wrapped.
#include <ATen/core/dispatch/Dispatcher.h>

#include <mutex>
#include <sstream>
#include <unordered_map>
#include <vector>

#include "internal.h"

namespace {

// What an argument's schema type accepts.
enum Ty : uint8_t {
  TY_TENSOR,       // Tensor
  TY_INT,          // int, SymInt
  TY_FLOAT,        // float, SymFloat
  TY_BOOL,         // bool, SymBool
  TY_SCALAR,       // Scalar (NumberType)
  TY_STRING,       // str
  TY_DTYPE,        // ScalarType
  TY_ENUM_INT,     // Layout, MemoryFormat (ints in an IValue)
  TY_INTS,         // int[], SymInt[]
  TY_FLOATS,       // float[]
  TY_BOOLS,        // bool[]
  TY_TENSORS,      // Tensor[]
  TY_OPT_TENSORS,  // Tensor?[]
  TY_OTHER         // Device, Generator, ...: default or None only
};

struct ArgSpec {
  Ty ty = TY_OTHER;
  bool optional = false;  // T? (None allowed)
  bool has_default = false;
  int list_n = 0;  // N of int[N] (0: none)
  c10::IValue def;
};

}  // namespace

struct cg_op_s {
  c10::OperatorHandle op;
  std::string name;  // "aten::add.Tensor", for messages
  std::vector<ArgSpec> args;
};

namespace {

Ty classify_base(const c10::TypePtr &t) {
  using K = c10::TypeKind;
  switch (t->kind()) {
    case K::TensorType: return TY_TENSOR;
    case K::IntType:
    case K::SymIntType: return TY_INT;
    case K::FloatType:
    case K::SymFloatType: return TY_FLOAT;
    case K::BoolType: return TY_BOOL;
    case K::NumberType: return TY_SCALAR;
    case K::StringType: return TY_STRING;
    case K::ScalarTypeType: return TY_DTYPE;
    case K::LayoutType:
    case K::MemoryFormatType: return TY_ENUM_INT;
    case K::ListType: {
      const c10::TypePtr &e = t->containedTypes()[0];
      switch (e->kind()) {
        case K::IntType:
        case K::SymIntType: return TY_INTS;
        case K::FloatType:
        case K::SymFloatType: return TY_FLOATS;
        case K::BoolType: return TY_BOOLS;
        case K::TensorType: return TY_TENSORS;
        case K::OptionalType:
          if (e->containedTypes()[0]->kind() == K::TensorType)
            return TY_OPT_TENSORS;
          return TY_OTHER;
        default: return TY_OTHER;
      }
    }
    default: break;
  }
  // Kinds that not every libtorch line has (SymBool is 2.x only).
  if (std::strcmp(c10::typeKindToString(t->kind()), "SymBoolType") == 0)
    return TY_BOOL;
  return TY_OTHER;
}

ArgSpec spec_of(const c10::Argument &a) {
  ArgSpec s;
  // real_type tells ScalarType, Layout, MemoryFormat and SymInt from the
  // plain ints type() shows them as.
  c10::TypePtr t = a.real_type();
  if (t->kind() == c10::TypeKind::OptionalType) {
    s.optional = true;
    t = t->containedTypes()[0];
  }
  s.ty = classify_base(t);
  if (a.N()) s.list_n = *a.N();
  if (a.default_value()) {
    s.has_default = true;
    s.def = *a.default_value();
  }
  return s;
}

const char *kind_name(const cg_arg &a) {
  switch (a.kind) {
    case CG_ARG_DEFAULT: return "the default";
    case CG_ARG_NONE: return "None";
    case CG_ARG_TENSOR: return a.t == nullptr ? "None (a NULL handle)" : "a Tensor";
    case CG_ARG_INT: return "an int";
    case CG_ARG_DOUBLE: return "a float";
    case CG_ARG_BOOL: return "a bool";
    case CG_ARG_INTS: return "an int list";
    case CG_ARG_DOUBLES: return "a float list";
    case CG_ARG_TENSORS: return "a Tensor list";
    case CG_ARG_STRING: return "a string";
    case CG_ARG_DTYPE: return "a dtype";
    case CG_ARG_OPT_TENSORS: return "a Tensor? list";
  }
  return "an unknown argument kind";
}

// arg_prefix is "argument 'mask' (position 2) of aten::masked_fill.Scalar".
std::string arg_prefix(const cg_op_s &op, size_t i) {
  return "argument '" + op.op.schema().arguments()[i].name() + "' (position " +
         std::to_string(i + 1) + ") of " + op.name;
}

[[noreturn]] __attribute__((noinline, cold)) void bad_arg(const cg_op_s &op,
                                                         size_t i,
                                                         const cg_arg &a) {
  const c10::Argument &sa = op.op.schema().arguments()[i];
  std::string want;
  if (sa.real_type()->kind() == c10::TypeKind::TensorType) {
    want = "a Tensor";
  } else {
    // The type as the schema spells it: "Scalar", "ScalarType?", "int[1]?"
    // (an Argument prints as "<type> <name>[=<default>]").
    std::ostringstream s;
    s << sa;
    want = s.str();
    size_t at = want.rfind(" " + sa.name());
    if (at != std::string::npos) want.resize(at);
  }
  throw std::invalid_argument(arg_prefix(op, i) + " must be " + want +
                              ", got " + kind_name(a));
}

[[noreturn]] __attribute__((noinline, cold)) void bad_arg_msg(
    const cg_op_s &op, size_t i, const std::string &msg) {
  throw std::invalid_argument(arg_prefix(op, i) + ": " + msg);
}

[[noreturn]] __attribute__((noinline, cold)) void no_default(const cg_op_s &op,
                                                            size_t i) {
  throw std::invalid_argument(arg_prefix(op, i) +
                              " has no default and must be given");
}

void check_array(const cg_op_s &op, size_t i, const cg_arg &a,
                 const void *p) {
  if (a.n < 0) bad_arg_msg(op, i, "negative length " + std::to_string(a.n));
  if (a.n > 0 && p == nullptr) bad_arg_msg(op, i, "NULL array");
}

at::Tensor list_tensor(const cg_op_s &op, size_t i, const cg_arg &a, int k) {
  cg_tensor h = a.tensors[k];
  if (h == nullptr || !h->t.defined())
    bad_arg_msg(op, i, "element " + std::to_string(k) + " is not a Tensor");
  return h->t;
}

// ivalue converts argument i given as a to what the schema wants.
c10::IValue ivalue(const cg_op_s &op, size_t i, const cg_arg &a) {
  const ArgSpec &s = op.args[i];
  switch (a.kind) {
    case CG_ARG_DEFAULT:
      if (!s.has_default) no_default(op, i);
      return s.def;
    case CG_ARG_NONE:
      if (!s.optional) bad_arg(op, i, a);
      return c10::IValue();
    case CG_ARG_TENSOR:
      if (s.ty != TY_TENSOR) bad_arg(op, i, a);
      if (a.t == nullptr || !a.t->t.defined()) {
        if (!s.optional) bad_arg(op, i, a);
        return c10::IValue();
      }
      return c10::IValue(a.t->t);
    case CG_ARG_INT:
      switch (s.ty) {
        case TY_INT:
        case TY_SCALAR:
        case TY_ENUM_INT: return c10::IValue(static_cast<int64_t>(a.i));
        case TY_FLOAT: return c10::IValue(static_cast<double>(a.i));
        case TY_INTS: {
          // int[N] takes one int for all N, as in Python.
          c10::List<int64_t> l;
          int n = s.list_n > 0 ? s.list_n : 1;
          l.reserve(n);
          for (int k = 0; k < n; k++) l.push_back(a.i);
          return c10::IValue(std::move(l));
        }
        default: bad_arg(op, i, a);
      }
    case CG_ARG_DOUBLE:
      if (s.ty != TY_FLOAT && s.ty != TY_SCALAR) bad_arg(op, i, a);
      return c10::IValue(a.d);
    case CG_ARG_BOOL:
      if (s.ty != TY_BOOL && s.ty != TY_SCALAR) bad_arg(op, i, a);
      return c10::IValue(a.i != 0);
    case CG_ARG_INTS:
      check_array(op, i, a, a.ints);
      if (s.ty == TY_INTS) {
        return c10::IValue(c10::IntArrayRef(a.ints, a.n));
      } else if (s.ty == TY_BOOLS) {
        c10::List<bool> l;
        l.reserve(a.n);
        for (int k = 0; k < a.n; k++) l.push_back(a.ints[k] != 0);
        return c10::IValue(std::move(l));
      } else if (s.ty == TY_FLOATS) {
        c10::List<double> l;
        l.reserve(a.n);
        for (int k = 0; k < a.n; k++) l.push_back(static_cast<double>(a.ints[k]));
        return c10::IValue(std::move(l));
      }
      bad_arg(op, i, a);
    case CG_ARG_DOUBLES:
      check_array(op, i, a, a.doubles);
      if (s.ty != TY_FLOATS) bad_arg(op, i, a);
      return c10::IValue(c10::ArrayRef<double>(a.doubles, a.n));
    case CG_ARG_TENSORS:
      check_array(op, i, a, a.tensors);
      if (s.ty == TY_TENSORS) {
        c10::List<at::Tensor> l;
        l.reserve(a.n);
        for (int k = 0; k < a.n; k++) l.push_back(list_tensor(op, i, a, k));
        return c10::IValue(std::move(l));
      } else if (s.ty == TY_OPT_TENSORS) {
        c10::List<c10::optional<at::Tensor>> l;
        l.reserve(a.n);
        for (int k = 0; k < a.n; k++) l.push_back(list_tensor(op, i, a, k));
        return c10::IValue(std::move(l));
      }
      bad_arg(op, i, a);
    case CG_ARG_OPT_TENSORS: {
      check_array(op, i, a, a.tensors);
      if (s.ty != TY_OPT_TENSORS) bad_arg(op, i, a);
      c10::List<c10::optional<at::Tensor>> l;
      l.reserve(a.n);
      for (int k = 0; k < a.n; k++) {
        cg_tensor h = a.tensors[k];
        if (h == nullptr || !h->t.defined())
          l.push_back(c10::nullopt);
        else
          l.push_back(h->t);
      }
      return c10::IValue(std::move(l));
    }
    case CG_ARG_STRING:
      if (s.ty != TY_STRING) bad_arg(op, i, a);
      if (a.s == nullptr) bad_arg_msg(op, i, "NULL string");
      return c10::IValue(std::string(a.s));
    case CG_ARG_DTYPE: {
      if (s.ty != TY_DTYPE) bad_arg(op, i, a);
      at::ScalarType st;
      try {
        st = cg::dtype_of(static_cast<int>(a.i));
      } catch (const std::exception &e) {
        bad_arg_msg(op, i, e.what());
      }
      return c10::IValue(static_cast<int64_t>(st));
    }
  }
  bad_arg_msg(op, i, "unknown argument kind " + std::to_string(a.kind));
}

// count_outputs counts the handles an output gives, or throws for one that
// is not made of tensors.
size_t count_outputs(const cg_op_s &op, const c10::IValue &v) {
  if (v.isTensor() || v.isNone()) return 1;
  if (v.isTensorList()) return v.toTensorList().size();
  if (v.isTuple()) {
    size_t n = 0;
    for (const auto &e : v.toTupleRef().elements()) n += count_outputs(op, e);
    return n;
  }
  if (v.isList()) {  // e.g. Tensor?[]
    size_t n = 0;
    for (const c10::IValue &e : v.toListRef()) n += count_outputs(op, e);
    return n;
  }
  throw std::invalid_argument(op.name + " returns a non-tensor (" +
                              v.tagKind() + "); cg_op_call returns tensors only");
}

cg_tensor handle_of(const at::Tensor &t) {
  return t.defined() ? cg::wrap(t) : nullptr;
}

void put_outputs(const c10::IValue &v, std::vector<cg_tensor> &out) {
  if (v.isTensor()) {
    out.push_back(handle_of(v.toTensor()));
  } else if (v.isNone()) {
    out.push_back(nullptr);
  } else if (v.isTensorList()) {
    for (const at::Tensor &t : v.toTensorList()) out.push_back(handle_of(t));
  } else if (v.isTuple()) {
    for (const auto &e : v.toTupleRef().elements()) put_outputs(e, out);
  } else if (v.isList()) {
    for (const c10::IValue &e : v.toListRef()) put_outputs(e, out);
  }
}

std::mutex ops_mu;
std::unordered_map<std::string, cg_op_s *> &ops_found() {
  static auto *m = new std::unordered_map<std::string, cg_op_s *>();
  return *m;
}

}  // namespace

extern "C" {

cg_err cg_op_find(const char *name, const char *overload, cg_op *out) {
  CG_TRY
  if (name == nullptr) throw std::invalid_argument("NULL operator name");
  std::string ov = overload == nullptr ? "" : overload;
  std::string full = ov.empty() ? std::string(name) : std::string(name) + "." + ov;
  std::lock_guard<std::mutex> lock(ops_mu);
  auto &m = ops_found();
  auto it = m.find(full);
  if (it != m.end()) {
    *out = it->second;
    return nullptr;
  }
  auto h = c10::Dispatcher::singleton().findSchema({name, ov});
  if (!h) throw std::invalid_argument("unknown operator " + full);
  // Handles live as long as the process (like the operator registry).
  auto *op = new cg_op_s{*h, full, {}};
  for (const c10::Argument &a : op->op.schema().arguments())
    op->args.push_back(spec_of(a));
  m.emplace(full, op);
  *out = op;
  CG_CATCH
}

cg_err cg_op_call(cg_op op, const cg_arg *args, int nargs, cg_tensor *outs,
                  int cap, int *nouts) {
  CG_TRY
  if (op == nullptr) throw std::invalid_argument("null operator handle");
  const size_t n = op->args.size();
  if (nargs < 0 || (nargs > 0 && args == nullptr))
    throw std::invalid_argument("bad argument array");
  if (static_cast<size_t>(nargs) > n)
    throw std::invalid_argument(op->name + " takes " + std::to_string(n) +
                                " arguments, got " + std::to_string(nargs));
  torch::jit::Stack stack;
  stack.reserve(std::max<size_t>(n, 4));
  for (size_t i = 0; i < static_cast<size_t>(nargs); i++)
    stack.push_back(ivalue(*op, i, args[i]));
  for (size_t i = nargs; i < n; i++) {
    if (!op->args[i].has_default) no_default(*op, i);
    stack.push_back(op->args[i].def);
  }
  op->op.callBoxed(stack);

  if (stack.size() == 1 && stack[0].isTensor() && cap >= 1) {  // most ops
    outs[0] = handle_of(stack[0].toTensor());
    *nouts = 1;
    return nullptr;
  }
  size_t total = 0;
  for (const c10::IValue &v : stack) total += count_outputs(*op, v);
  if (total > static_cast<size_t>(cap < 0 ? 0 : cap))
    throw std::invalid_argument(op->name + " gives " + std::to_string(total) +
                                " tensors, room for " + std::to_string(cap));
  if (total > 0) {
    std::vector<cg_tensor> made;
    made.reserve(total);
    try {
      for (const c10::IValue &v : stack) put_outputs(v, made);
    } catch (...) {
      for (cg_tensor h : made) cg_tensor_free(h);
      throw;
    }
    for (size_t k = 0; k < total; k++) outs[k] = made[k];
  }
  *nouts = static_cast<int>(total);
  CG_CATCH
}

cg_err cg_op_schema(cg_op op, const char **out) {
  CG_TRY
  if (op == nullptr) throw std::invalid_argument("null operator handle");
  std::ostringstream s;
  s << op->op.schema();
  *out = cg::dup(s.str().c_str());
  CG_CATCH
}

}  // extern "C"
