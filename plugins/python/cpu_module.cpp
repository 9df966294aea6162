// pybind11 module mrcnn_trt.plugins._cpu: the C++ CPU kernels on NumPy arrays.
// Use the torch-facing wrappers in plugins/cpu.py; this layer releases the GIL
// and leaves attribute parsing and shape checks to the host layer
// (plugins/host/plugin_host.h, driven by the op contract), whose errors become
// ValueError.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "../common/all_ops.h"
#include "../common/mrcnn_math.h"
#include "../common/op_params.h"
#include "../common/thread_pool.h"
#include "../host/plugin_host.h"

namespace py = pybind11;
using namespace mrcnn;

namespace {

using F32 = py::array_t<float, py::array::c_style | py::array::forcecast>;
using I32 = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;

[[noreturn]] void fail(const std::string& msg) { throw py::value_error(msg); }

std::string shape_str(const py::array& a) {
  std::string s = "[";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + "]";
}

void check_shape(const py::array& a, const std::vector<py::ssize_t>& want, const char* what) {
  bool ok = a.ndim() == (py::ssize_t)want.size();
  for (size_t i = 0; ok && i < want.size(); ++i) ok = want[i] < 0 || a.shape(i) == want[i];
  if (!ok) {
    std::string w = "[";
    for (size_t i = 0; i < want.size(); ++i) w += (i ? ", " : "") + (want[i] < 0 ? std::string("?") : std::to_string(want[i]));
    fail(std::string(what) + " must have shape " + w + "], got " + shape_str(a));
  }
}

// Data tensors: float32 or float16, C-contiguous (the wrapper makes them so).
DType data_dtype(const py::array& a, const char* what) {
  if (!(a.flags() & py::array::c_style)) fail(std::string(what) + " must be C-contiguous");
  if (a.dtype().is(py::dtype::of<float>())) return DType::kFloat32;
  if (a.dtype().kind() == 'f' && a.dtype().itemsize() == 2) return DType::kFloat16;
  fail(std::string(what) + " must be float32 or float16");
}

py::array new_like(DType dt, const std::vector<py::ssize_t>& shape) {
  if (dt == DType::kFloat16) return py::array(py::dtype("float16"), shape);
  return py::array(py::dtype::of<float>(), shape);
}

int checked_int(py::ssize_t v, const char* what) {
  if (v > 0x7fffffff) fail(std::string(what) + " is too large");
  return (int)v;
}

// Attributes from a dict {name: int | float | sequence of floats} through the
// host layer (defaults, names, counts, ranges).
template <typename P>
P params_from(const py::dict& attrs) {
  std::vector<host::FieldValue> fields;
  int n = 0;
  const AttrDesc* table = attr_table(P{}, &n);
  for (auto item : attrs) {
    host::FieldValue f;
    f.name = py::str(item.first);
    bool floats = false;
    for (int i = 0; i < n; ++i) floats = floats || (f.name == table[i].name && table[i].type == AttrType::kFloats);
    const py::object v = py::reinterpret_borrow<py::object>(item.second);
    if (floats || (py::isinstance<py::sequence>(v) && !py::isinstance<py::str>(v))) {
      for (auto x : py::iterable(v)) f.values.push_back(py::cast<double>(x));
    } else {
      f.kind = py::isinstance<py::int_>(v) ? host::FieldKind::kInt : host::FieldKind::kFloat;
      f.values.push_back(py::cast<double>(v));
    }
    fields.push_back(std::move(f));
  }
  try {
    return host::parse_fields<P>(fields);
  } catch (const host::HostError& e) {
    fail(e.what());
  }
}

// Runtime sizes of `p` from the input arrays' shapes (host layer: the
// contract's ranks and size relations); returns the output shapes, with the
// kernel-only outputs when `with_extra`.
template <typename P>
std::vector<std::vector<py::ssize_t>> sized(P& p, const std::vector<const py::array*>& inputs,
                                            bool with_extra = false) {
  std::vector<host::Dims> dims;
  for (const py::array* a : inputs) dims.emplace_back(a->shape(), a->shape() + a->ndim());
  std::vector<host::Dims> out;
  try {
    p = host::with_runtime_sizes(p, dims);
    out = host::output_shapes(p, dims, with_extra);
  } catch (const host::HostError& e) {
    fail(e.what());
  }
  std::vector<std::vector<py::ssize_t>> r;
  for (const auto& d : out) r.emplace_back(d.begin(), d.end());
  return r;
}

template <typename P>
py::dict attrs_of(const P& p) {
  py::dict out;
  int n = 0;
  const AttrDesc* t = attr_table(p, &n);
  double v[4];
  for (int i = 0; i < n; ++i) {
    const int c = get_attr(p, t[i].name, v);
    if (t[i].type == AttrType::kInt) out[t[i].name] = (int64_t)v[0];
    else if (t[i].type == AttrType::kFloat) out[t[i].name] = v[0];
    else {
      py::tuple tup(c);
      for (int j = 0; j < c; ++j) tup[j] = v[j];
      out[t[i].name] = tup;
    }
  }
  return out;
}

py::list table_of(const AttrDesc* t, int n) {
  static const char* types[] = {"int", "float", "floats"};
  py::list out;
  for (int i = 0; i < n; ++i) {
    py::dict d;
    d["name"] = t[i].name;
    d["type"] = types[(int)t[i].type];
    d["length"] = t[i].length;
    py::list def;
    for (int j = 0; j < t[i].length; ++j) def.append(t[i].default_value[j]);
    d["default"] = def;
    d["min"] = t[i].has_range ? py::object(py::float_(t[i].min)) : py::object(py::none());
    d["max"] = t[i].has_range ? py::object(py::float_(t[i].max)) : py::object(py::none());
    d["doc"] = t[i].doc;
    out.append(d);
  }
  return out;
}

// ---------------------------------------------------------------- ops
py::array py_crop_and_resize(const py::array& image, const F32& boxes, const I32& box_ind, int crop_size,
                             float extrapolation_value, int threads) {
  const DType dt = data_dtype(image, "image");
  if (image.ndim() != 4) fail("image must have shape [N, C, H, W], got " + shape_str(image));
  const int N = checked_int(image.shape(0), "N"), C = checked_int(image.shape(1), "C");
  const int H = checked_int(image.shape(2), "H"), W = checked_int(image.shape(3), "W");
  check_shape(boxes, {-1, 4}, "boxes");
  const int K = checked_int(boxes.shape(0), "K");
  check_shape(box_ind, {K}, "box_ind");
  if (crop_size < 2 || crop_size > 64) fail("crop_size must be in [2, 64]");
  if (H < 1 || W < 1) fail("image must not be empty");
  const int32_t* bi = box_ind.data();
  for (int k = 0; k < K; ++k)
    if (bi[k] < 0 || bi[k] >= N) fail("box_ind[" + std::to_string(k) + "] = " + std::to_string(bi[k]) + " is out of range");
  py::array out = new_like(dt, {K, C, crop_size, crop_size});
  const void* img = image.data();
  void* o = out.mutable_data();
  const float* b = boxes.data();
  {
    py::gil_scoped_release nogil;
    StdThreadParallel pool(threads);
    crop_and_resize_cpu(dt, img, N, C, H, W, b, bi, K, crop_size, extrapolation_value, o, pool.get());
  }
  return out;
}

py::array_t<int64_t> py_nms(const F32& boxes, const F32& scores, float threshold, int max_keep) {
  check_shape(boxes, {-1, 4}, "boxes");
  const int K = checked_int(boxes.shape(0), "K");
  check_shape(scores, {K}, "scores");
  std::vector<int32_t> keep((size_t)K);
  int m = 0;
  {
    py::gil_scoped_release nogil;
    m = nms_cpu(boxes.data(), scores.data(), K, threshold, max_keep, keep.data(), nullptr);
  }
  py::array_t<int64_t> out(m);
  auto w = out.mutable_unchecked<1>();
  for (int i = 0; i < m; ++i) w(i) = keep[(size_t)i];
  return out;
}

// Any op of the contract (its OpTraits::cpu, in the op's folder) on arrays:
// `inputs` in contract order (geometry converted to float32, counts to int32;
// data tensors float32 or float16, all of one dtype). Returns the node outputs
// then the kernel-only outputs.
template <typename P>
std::vector<py::array> run_op(const std::vector<py::object>& inputs, const py::dict& attrs, int threads) {
  P p = params_from<P>(attrs);
  const host::OpIO& io = host::op_io<P>();
  std::vector<py::array> in;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const host::Role role = (int)i < io.nb_inputs ? io.inputs[i].role : host::Role::kData;
    if (role == host::Role::kF32) in.push_back(F32::ensure(inputs[i]));
    else if (role == host::Role::kI32) in.push_back(I32::ensure(inputs[i]));
    else in.push_back(py::array::ensure(inputs[i]));
    if (!in.back()) fail(std::string(op_name(p)) + ": input " + std::to_string(i) + " is not an array");
  }
  std::vector<const py::array*> ptrs;
  for (const py::array& a : in) ptrs.push_back(&a);
  const auto out_shapes = sized(p, ptrs, /*with_extra=*/true);
  DType dt = DType::kFloat32;
  int first = -1;
  for (int i = 0; i < io.nb_inputs; ++i) {
    if (io.inputs[i].role != host::Role::kData) continue;
    const DType t = data_dtype(in[(size_t)i], io.inputs[i].name);
    if (first < 0) first = i, dt = t;
    else if (t != dt) fail(std::string(io.inputs[i].name) + " must have the dtype of " + io.inputs[first].name);
  }
  std::vector<py::array> out;
  std::vector<const void*> in_data;
  std::vector<void*> out_data;
  for (const py::array& a : in) in_data.push_back(a.data());
  for (size_t o = 0; o < out_shapes.size(); ++o) {
    const host::Role role = io.outputs[o].role;
    out.push_back(role == host::Role::kData ? new_like(dt, out_shapes[o])
                  : role == host::Role::kI32 ? py::array(py::array_t<int32_t>(out_shapes[o]))
                                             : py::array(py::array_t<float>(out_shapes[o])));
    out_data.push_back(out.back().mutable_data());
  }
  {
    py::gil_scoped_release nogil;
    StdThreadParallel pool(threads);
    OpTraits<P>::cpu(p, dt, in_data.data(), out_data.data(), nullptr, pool.get());
  }
  return out;
}

// The Python signature of an op's function: the contract's inputs in order (a
// list or tuple stands for several, e.g. the feature maps), then `attrs` and
// optionally `threads` (also as keywords). One output: the array; several: a tuple.
template <typename P>
py::object py_op(const py::args& args, const py::kwargs& kw) {
  std::vector<py::object> items;
  for (auto a : args) items.push_back(py::reinterpret_borrow<py::object>(a));
  py::object attrs, threads;
  for (auto item : kw) {
    const std::string k = py::str(item.first);
    if (k == "attrs") attrs = py::reinterpret_borrow<py::object>(item.second);
    else if (k == "threads") threads = py::reinterpret_borrow<py::object>(item.second);
    else throw py::type_error(std::string(op_name(P{})) + ": unexpected keyword argument '" + k + "'");
  }
  if (!attrs) {
    size_t at = items.size();
    for (size_t i = 0; i < items.size(); ++i)
      if (py::isinstance<py::dict>(items[i])) at = i;
    if (at == items.size() || items.size() - at > (threads ? 1u : 2u))
      throw py::type_error(std::string(op_name(P{})) + ": expected (inputs..., attrs, threads=1)");
    attrs = items[at];
    if (at + 2 == items.size()) threads = items[at + 1];
    items.resize(at);
  }
  std::vector<py::object> inputs;
  for (const py::object& x : items) {
    if (py::isinstance<py::list>(x) || py::isinstance<py::tuple>(x))
      for (auto e : x) inputs.push_back(py::reinterpret_borrow<py::object>(e));
    else
      inputs.push_back(x);
  }
  const std::vector<py::array> out =
      run_op<P>(inputs, attrs.cast<py::dict>(), threads ? threads.cast<int>() : 1);
  if (out.size() == 1) return out[0];
  py::tuple t(out.size());
  for (size_t i = 0; i < out.size(); ++i) t[i] = out[i];
  return std::move(t);
}

}  // namespace

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "C++ CPU kernels of the mrcnn custom ops (use mrcnn_trt.plugins.cpu)";
  m.attr("DOMAIN") = kDomain;
  m.attr("OP_VERSION") = kOpVersion;

  m.def("attr_tables", []() {
    py::dict d;
    for_each_op([&](auto tag) {
      int n = 0;
      const AttrDesc* t = attr_table(tag, &n);
      d[op_name(tag)] = table_of(t, n);
    });
    return d;
  }, "The C++ attribute tables (op_params.h): op -> list of {name, type, length, default, min, max, doc}.");
  m.def("param_defaults", []() {
    py::dict d;
    for_each_op([&](auto tag) { d[op_name(tag)] = attrs_of(tag); });
    return d;
  }, "Attribute values of default-constructed C++ params structs: op -> {name: value}.");
  m.def("contract_json", []() { return host::contract_json(); },
        "The op contract as compiled (host layer): JSON with attributes, tensors and size symbols per op.");
  m.def("validate", [](const std::string& op, const py::dict& attrs) -> py::dict {
    py::dict out;
    if (!with_op(op.c_str(), [&](auto tag) { out = attrs_of(params_from<decltype(tag)>(attrs)); }))
      fail("unknown op " + op);
    return out;
  }, py::arg("op"), py::arg("attrs"), "Fill defaults and check attributes in C++; ValueError on a bad one.");
  m.def("run", [](const std::string& op, const std::vector<py::object>& inputs, const py::dict& attrs, int threads) {
    std::vector<py::array> out;
    if (!with_op(op.c_str(), [&](auto tag) { out = run_op<decltype(tag)>(inputs, attrs, threads); }))
      fail("unknown op " + op);
    return out;
  }, py::arg("op"), py::arg("inputs"), py::arg("attrs"), py::arg("threads") = 1,
        "Op `op` (contract name) on arrays in contract order: [node outputs..., kernel-only outputs...].");

  // mrcnn_math.h's binary16 conversions, for tests (bit patterns as uint16).
  m.def("half_bits_to_float", [](const py::array_t<uint16_t, py::array::c_style | py::array::forcecast>& h) {
    py::array_t<float> out(h.size());
    const uint16_t* in = h.data();
    float* o = out.mutable_data();
    for (py::ssize_t i = 0; i < h.size(); ++i) o[i] = half_to_float(in[i]);
    return out;
  });
  m.def("float_to_half_bits", [](const F32& f) {
    py::array_t<uint16_t> out(f.size());
    const float* in = f.data();
    uint16_t* o = out.mutable_data();
    for (py::ssize_t i = 0; i < f.size(); ++i) o[i] = float_to_half(in[i]);
    return out;
  });

  m.def("crop_and_resize", &py_crop_and_resize, py::arg("image"), py::arg("boxes"), py::arg("box_ind"),
        py::arg("crop_size"), py::arg("extrapolation_value") = 0.0f, py::arg("threads") = 1);
  m.def("nms", &py_nms, py::arg("boxes"), py::arg("scores"), py::arg("threshold"), py::arg("max_keep") = -1);
  // One function per op, named as its PyTorch operator: fn(inputs..., attrs, threads=1).
#define MRCNN_DEF_OP(Op, torch_name)                                                                        \
  m.def(#torch_name, &py_op<Op##Params>,                                                                    \
        #Op " on arrays: the contract's inputs in order (a list stands for several), attrs (dict), threads=1");
  MRCNN_CONTRACT_OPS(MRCNN_DEF_OP)
#undef MRCNN_DEF_OP
}
