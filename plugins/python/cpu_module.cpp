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

#include "../common/mrcnn_math.h"
#include "../common/op_params.h"
#include "../common/thread_pool.h"
#include "../detection_layer/detection_layer.h"
#include "../host/plugin_host.h"
#include "../proposal_layer/proposal_layer.h"
#include "../pyramid_roi_align/pyramid_roi_align.h"

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

py::array py_pyramid_roi_align(const F32& boxes, const std::vector<py::array>& maps, const py::dict& attrs,
                               int threads) {
  PyramidROIAlignParams p = params_from<PyramidROIAlignParams>(attrs);
  if (maps.size() != 4) fail("PyramidROIAlign needs 4 feature maps (P2..P5)");
  const auto out_shapes = sized(p, {&boxes, &maps[0], &maps[1], &maps[2], &maps[3]});
  const DType dt = data_dtype(maps[0], "P2");
  const void* ptrs[4];
  for (int l = 0; l < 4; ++l) {
    const std::string name = "P" + std::to_string(l + 2);
    if (data_dtype(maps[l], name.c_str()) != dt) fail(name + " must have the dtype of P2");
    ptrs[l] = maps[l].data();
  }
  py::array out = new_like(dt, out_shapes[0]);
  void* o = out.mutable_data();
  const float* b = boxes.data();
  {
    py::gil_scoped_release nogil;
    StdThreadParallel pool(threads);
    pyramid_roi_align_cpu(p, dt, b, ptrs, o, nullptr, pool.get());
  }
  return out;
}

py::tuple py_proposal_layer(const py::array& scores, const py::array& deltas, const F32& anchors,
                            const py::dict& attrs, int threads) {
  ProposalLayerParams p = params_from<ProposalLayerParams>(attrs);
  const auto out_shapes = sized(p, {&scores, &deltas, &anchors}, /*with_extra=*/true);
  const DType dt = data_dtype(scores, "scores");
  if (data_dtype(deltas, "deltas") != dt) fail("deltas must have the dtype of scores");
  py::array_t<float> rois(out_shapes[0]);
  py::array_t<int32_t> count(out_shapes[1]);
  py::array_t<int32_t> anchor_index(out_shapes[2]);
  const void* s = scores.data();
  const void* d = deltas.data();
  const float* a = anchors.data();
  float* r = rois.mutable_data();
  int32_t* c = count.mutable_data();
  int32_t* ai = anchor_index.mutable_data();
  {
    py::gil_scoped_release nogil;
    StdThreadParallel pool(threads);
    proposal_layer_cpu(p, dt, s, d, a, r, c, ai, nullptr, pool.get());
  }
  return py::make_tuple(rois, count, anchor_index);
}

py::tuple py_detection_layer(const F32& rois, const I32& roi_count, const py::array& probs, const py::array& deltas,
                             const F32& window, const py::dict& attrs, int threads) {
  DetectionLayerParams p = params_from<DetectionLayerParams>(attrs);
  const auto out_shapes = sized(p, {&rois, &roi_count, &probs, &deltas, &window});
  const DType dt = data_dtype(probs, "probs");
  if (data_dtype(deltas, "deltas") != dt) fail("deltas must have the dtype of probs");
  py::array_t<float> dets(out_shapes[0]);
  py::array_t<int32_t> count(out_shapes[1]);
  const float* r = rois.data();
  const int32_t* rc = roi_count.data();
  const void* pr = probs.data();
  const void* de = deltas.data();
  const float* w = window.data();
  float* o = dets.mutable_data();
  int32_t* c = count.mutable_data();
  {
    py::gil_scoped_release nogil;
    StdThreadParallel pool(threads);
    detection_layer_cpu(p, dt, r, rc, pr, de, w, o, c, nullptr, pool.get());
  }
  return py::make_tuple(dets, count);
}

}  // namespace

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "C++ CPU kernels of the mrcnn custom ops (use mrcnn_trt.plugins.cpu)";
  m.attr("DOMAIN") = kDomain;
  m.attr("OP_VERSION") = kOpVersion;

  m.def("attr_tables", []() {
    py::dict d;
    d[kPyramidROIAlign] = table_of(kPyramidROIAlignAttrs, array_len(kPyramidROIAlignAttrs));
    d[kProposalLayer] = table_of(kProposalLayerAttrs, array_len(kProposalLayerAttrs));
    d[kDetectionLayer] = table_of(kDetectionLayerAttrs, array_len(kDetectionLayerAttrs));
    return d;
  }, "The C++ attribute tables (op_params.h): op -> list of {name, type, length, default, min, max, doc}.");
  m.def("param_defaults", []() {
    py::dict d;
    d[kPyramidROIAlign] = attrs_of(PyramidROIAlignParams{});
    d[kProposalLayer] = attrs_of(ProposalLayerParams{});
    d[kDetectionLayer] = attrs_of(DetectionLayerParams{});
    return d;
  }, "Attribute values of default-constructed C++ params structs: op -> {name: value}.");
  m.def("contract_json", []() { return host::contract_json(); },
        "The op contract as compiled (host layer): JSON with attributes, tensors and size symbols per op.");
  m.def("validate", [](const std::string& op, const py::dict& attrs) -> py::dict {
    if (op == kPyramidROIAlign) return attrs_of(params_from<PyramidROIAlignParams>(attrs));
    if (op == kProposalLayer) return attrs_of(params_from<ProposalLayerParams>(attrs));
    if (op == kDetectionLayer) return attrs_of(params_from<DetectionLayerParams>(attrs));
    fail("unknown op " + op);
  }, py::arg("op"), py::arg("attrs"), "Fill defaults and check attributes in C++; ValueError on a bad one.");

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
  m.def("pyramid_roi_align", &py_pyramid_roi_align, py::arg("boxes"), py::arg("feature_maps"), py::arg("attrs"),
        py::arg("threads") = 1);
  m.def("proposal_layer", &py_proposal_layer, py::arg("scores"), py::arg("deltas"), py::arg("anchors"),
        py::arg("attrs"), py::arg("threads") = 1);
  m.def("detection_layer", &py_detection_layer, py::arg("rois"), py::arg("roi_count"), py::arg("probs"),
        py::arg("deltas"), py::arg("window"), py::arg("attrs"), py::arg("threads") = 1);
}
