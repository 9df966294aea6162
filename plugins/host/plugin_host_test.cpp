// Unit tests of plugin_host (CPU only, no TensorRT). Run by ctest; with
// --fields-json prints the attribute tables for tests/test_plugin_host.py.
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <functional>
#include <string>
#include <vector>

#include "plugin_host.h"
#include "unit_check.h"

using namespace mrcnn;
using namespace mrcnn::host;

namespace {

FieldValue I(const char* name, double v) { return {name, FieldKind::kInt, {v}}; }
FieldValue F(const char* name, std::vector<double> v) { return {name, FieldKind::kFloat, v}; }

template <typename P>
bool same_attrs(const P& a, const P& b) {
  int n = 0;
  const AttrDesc* t = attr_table(a, &n);
  for (int i = 0; i < n; ++i) {
    double va[4], vb[4];
    const int ca = get_attr(a, t[i].name, va), cb = get_attr(b, t[i].name, vb);
    if (ca != cb) return false;
    for (int j = 0; j < ca; ++j)
      if (va[j] != vb[j]) return false;
  }
  return true;
}

// ------------------------------------------------------------------ fields
void test_parse_defaults() {
  const auto p = parse_fields<PyramidROIAlignParams>({});
  CHECK(p.pooled_size == 7 && p.image_size == 1024 && p.canonical_size == 224.0f && p.canonical_level == 4);
  const auto q = parse_fields<ProposalLayerParams>({});
  CHECK(q.pre_nms_topk == 6000 && q.post_nms_topk == 1000 && q.nms_threshold == 0.7f && q.image_size == 1024);
  CHECK(q.rpn_bbox_std_dev[0] == 0.1f && q.rpn_bbox_std_dev[3] == 0.2f);
  const auto d = parse_fields<DetectionLayerParams>({});
  CHECK(d.num_classes == 81 && d.min_confidence == 0.7f && d.nms_threshold == 0.3f && d.max_instances == 100);
  CHECK(d.bbox_std_dev[1] == 0.1f && d.bbox_std_dev[2] == 0.2f && d.image_size == 1024);
  // Every table default equals the struct's member initializer.
  CHECK(same_attrs(p, PyramidROIAlignParams{}));
  CHECK(same_attrs(q, ProposalLayerParams{}));
  CHECK(same_attrs(d, DetectionLayerParams{}));
}

void test_parse_values() {
  const auto p = parse_fields<PyramidROIAlignParams>({I("pooled_size", 14), F("canonical_size", {56.0}), I("image_size", 256)});
  CHECK(p.pooled_size == 14 && p.canonical_size == 56.0f && p.image_size == 256 && p.canonical_level == 4);
  // An int given as an integral float (some front ends do that) is accepted.
  CHECK(parse_fields<PyramidROIAlignParams>({F("pooled_size", {7.0})}).pooled_size == 7);
  // A float given as an int field is accepted.
  CHECK(parse_fields<PyramidROIAlignParams>({I("canonical_size", 100)}).canonical_size == 100.0f);
  const auto d = parse_fields<DetectionLayerParams>({I("num_classes", 4), F("bbox_std_dev", {1, 2, 3, 4}),
                                                     F("min_confidence", {0.0})});
  CHECK(d.num_classes == 4 && d.bbox_std_dev[0] == 1.0f && d.bbox_std_dev[3] == 4.0f && d.min_confidence == 0.0f);
  // Range edges are inclusive.
  CHECK(parse_fields<PyramidROIAlignParams>({I("pooled_size", 2)}).pooled_size == 2);
  CHECK(parse_fields<PyramidROIAlignParams>({I("pooled_size", 64)}).pooled_size == 64);
  CHECK(parse_fields<ProposalLayerParams>({F("nms_threshold", {1.0})}).nms_threshold == 1.0f);
  // ONNX parser conventions are ignored.
  CHECK(parse_fields<ProposalLayerParams>({I("plugin_version", 1)}).post_nms_topk == 1000);
}

void test_parse_errors() {
  CHECK_THROWS(parse_fields<PyramidROIAlignParams>({I("pool_size", 7)}), "unknown field 'pool_size'");
  CHECK_THROWS(parse_fields<PyramidROIAlignParams>({I("pooled_size", 1)}), "PyramidROIAlign.pooled_size = 1 is out of range [2, 64]");
  CHECK_THROWS(parse_fields<PyramidROIAlignParams>({I("pooled_size", 65)}), "out of range");
  CHECK_THROWS(parse_fields<PyramidROIAlignParams>({F("pooled_size", {7.5})}), "pooled_size must be an int, got 7.5");
  CHECK_THROWS(parse_fields<PyramidROIAlignParams>({I("canonical_level", 6)}), "canonical_level = 6 is out of range [2, 5]");
  CHECK_THROWS(parse_fields<PyramidROIAlignParams>({F("canonical_size", {NAN})}), "must be finite");
  CHECK_THROWS(parse_fields<PyramidROIAlignParams>({I("pooled_size", 7), I("pooled_size", 7)}), "given twice");
  CHECK_THROWS(parse_fields<ProposalLayerParams>({F("nms_threshold", {1.5})}), "nms_threshold = 1.5 is out of range [0, 1]");
  CHECK_THROWS(parse_fields<ProposalLayerParams>({F("nms_threshold", {-0.1})}), "out of range");
  CHECK_THROWS(parse_fields<ProposalLayerParams>({F("rpn_bbox_std_dev", {0.1, 0.1, 0.2})}), "needs 4 value(s), got 3");
  CHECK_THROWS(parse_fields<ProposalLayerParams>({F("nms_threshold", {0.5, 0.5})}), "needs 1 value(s), got 2");
  CHECK_THROWS(parse_fields<ProposalLayerParams>({I("post_nms_topk", 0)}), "post_nms_topk = 0 is out of range");
  CHECK_THROWS(parse_fields<ProposalLayerParams>({F("rpn_bbox_std_dev", {0.1, INFINITY, 0.2, 0.2})}), "must be finite");
  CHECK_THROWS(parse_fields<DetectionLayerParams>({I("num_classes", 1)}), "num_classes = 1 is out of range [2, 4096]");
  CHECK_THROWS(parse_fields<DetectionLayerParams>({I("image_size", 32)}), "image_size = 32 is out of range [64, 8192]");
  CHECK_THROWS(parse_fields<DetectionLayerParams>({F("max_instances", {1e12})}), "must be an int");
  // The format field only where serialized fields are read.
  CHECK_THROWS(parse_fields<DetectionLayerParams>({I(kFormatField, 1)}), "unknown field");
  CHECK(parse_fields<DetectionLayerParams>({I(kFormatField, 1)}, true).max_instances == 100);
  CHECK_THROWS(parse_fields<DetectionLayerParams>({I(kFormatField, 2)}, true), "format version 2");
}

template <typename P>
void round_trip_fields(const P& p) {
  CHECK(same_attrs(parse_fields<P>(to_fields(p)), p));
  const auto with = to_fields(p, true);
  CHECK(with.back().name == kFormatField);
  CHECK(same_attrs(parse_fields<P>(with, true), p));
}

void test_fields_round_trip() {
  round_trip_fields(parse_fields<PyramidROIAlignParams>({I("pooled_size", 14), F("canonical_size", {56.5})}));
  round_trip_fields(parse_fields<ProposalLayerParams>({I("pre_nms_topk", 2000), F("rpn_bbox_std_dev", {1, 2, 3, 4})}));
  round_trip_fields(parse_fields<DetectionLayerParams>({I("num_classes", 9), F("min_confidence", {0.05})}));
  const auto f = to_fields(PyramidROIAlignParams{});
  CHECK(f.size() == 4 && f[0].name == "pooled_size" && f[0].kind == FieldKind::kInt && f[2].kind == FieldKind::kFloat);
}

// ----------------------------------------------------------- serialization
template <typename P>
void round_trip_serial(const P& p) {
  const std::vector<uint8_t> b = serialize(p);
  CHECK(b.size() == serialized_size(p));
  CHECK(same_attrs(deserialize<P>(b.data(), b.size()), p));
  // Every truncation is rejected, and so is a trailing byte.
  bool all_truncations_fail = true;
  for (size_t n = 0; n < b.size(); ++n) {
    try {
      deserialize<P>(b.data(), n);
      all_truncations_fail = false;
    } catch (const HostError&) {
    }
  }
  CHECK(all_truncations_fail);
  std::vector<uint8_t> longer = b;
  longer.push_back(0);
  CHECK_THROWS(deserialize<P>(longer.data(), longer.size()), "trailing bytes");
  CHECK_THROWS(deserialize<P>(nullptr, 0), "no serialized data");
}

void test_serialization() {
  round_trip_serial(parse_fields<PyramidROIAlignParams>({I("pooled_size", 14), F("canonical_size", {56.25}), I("image_size", 512)}));
  round_trip_serial(parse_fields<ProposalLayerParams>({I("post_nms_topk", 250), F("nms_threshold", {0.65}),
                                                       F("rpn_bbox_std_dev", {0.125, 0.25, 0.5, 1.0})}));
  round_trip_serial(parse_fields<DetectionLayerParams>({I("num_classes", 4), I("max_instances", 50),
                                                        F("min_confidence", {0.0})}));

  const auto p = parse_fields<PyramidROIAlignParams>({I("pooled_size", 14)});
  std::vector<uint8_t> b = serialize(p);
  // Layout: magic "MRCN", format version 1 little endian, op name.
  CHECK(memcmp(b.data(), "MRCN", 4) == 0);
  CHECK(b[4] == 1 && b[5] == 0);
  CHECK(b[6] == 15 && b[7] == 0 && memcmp(b.data() + 8, "PyramidROIAlign", 15) == 0);
  // pooled_size is the first field: u16 11, "pooled_size", u8 type 0, u8 count 1, i32 14.
  const size_t f0 = 8 + 15 + 2;
  CHECK(b[f0] == 11 && memcmp(b.data() + f0 + 2, "pooled_size", 11) == 0);
  CHECK(b[f0 + 13] == 0 && b[f0 + 14] == 1 && b[f0 + 15] == 14 && b[f0 + 16] == 0);

  std::vector<uint8_t> bad = b;
  bad[0] = 'X';
  CHECK_THROWS(deserialize<PyramidROIAlignParams>(bad.data(), bad.size()), "bad magic");
  bad = b;
  bad[4] = 2;
  CHECK_THROWS(deserialize<PyramidROIAlignParams>(bad.data(), bad.size()), "format version 2");
  bad = b;
  bad[f0 + 15] = 1;  // pooled_size = 1: out of range
  CHECK_THROWS(deserialize<PyramidROIAlignParams>(bad.data(), bad.size()), "pooled_size = 1 is out of range");
  bad = b;
  bad[f0 + 2] = 'q';  // field renamed
  CHECK_THROWS(deserialize<PyramidROIAlignParams>(bad.data(), bad.size()), "expected 'pooled_size'");
  bad = b;
  bad[f0 + 13] = 1;  // type changed to float
  CHECK_THROWS(deserialize<PyramidROIAlignParams>(bad.data(), bad.size()), "expected 'pooled_size'");
  // Another op's data.
  const auto q = serialize(ProposalLayerParams{});
  CHECK_THROWS(deserialize<DetectionLayerParams>(q.data(), q.size()), "belongs to op 'ProposalLayer'");
  // Wrong buffer size for serialize.
  std::vector<uint8_t> small(b.size() - 1);
  CHECK_THROWS(serialize(p, small.data(), small.size()), "wrong size");
}

// ------------------------------------------------------------------ shapes
void test_shapes_roi_align() {
  const auto p = parse_fields<PyramidROIAlignParams>({I("pooled_size", 7)});
  const std::vector<Dims> in = {{2, 100, 4}, {2, 256, 256, 256}, {2, 256, 128, 128}, {2, 256, 64, 64}, {2, 256, 32, 32}};
  auto out = output_shapes(p, in);
  CHECK(out.size() == 1 && out[0] == (Dims{2, 100, 256, 7, 7}));
  const auto m = parse_fields<PyramidROIAlignParams>({I("pooled_size", 14)});
  CHECK(output_shapes(m, in)[0] == (Dims{2, 100, 256, 14, 14}));
  // Unknown (build time) dims propagate.
  out = output_shapes(p, {{-1, -1, 4}, {-1, 64, -1, -1}, {-1, 64, -1, -1}, {-1, 64, -1, -1}, {-1, -1, -1, -1}});
  CHECK(out[0] == (Dims{-1, -1, 64, 7, 7}));
  const auto rules = output_dim_rules(p, 0);
  CHECK(rules.size() == 5 && rules[2].input == 1 && rules[2].dim == 1 && rules[3].input < 0 && rules[3].value == 7);

  auto bad = in;
  bad[0] = {2, 100, 5};
  CHECK_THROWS(output_shapes(p, bad), "boxes must be [N,R,4]");
  bad = in;
  bad[0] = {200, 4};
  CHECK_THROWS(output_shapes(p, bad), "input 0 (boxes) must have rank 3");
  bad = in;
  bad[3] = {2, 128, 64, 64};
  CHECK_THROWS(output_shapes(p, bad), "P4 [2,128,64,64] does not match P2 [2,256,256,256] (C = 256)");
  bad = in;
  bad[2] = {3, 256, 128, 128};
  CHECK_THROWS(output_shapes(p, bad), "P3 [3,256,128,128] does not match boxes [2,100,4] (N = 2)");
  bad = in;
  bad[4] = {2, 256, 0, 32};
  CHECK_THROWS(output_shapes(p, bad), "P5 [2,256,0,32] has H5 = 0 (must be >= 1)");
  CHECK_THROWS(output_shapes(p, {in[0], in[1]}), "expected 5 inputs, got 2");
  CHECK_THROWS(output_dim_rules(p, 1), "no output 1");

  const auto s = with_runtime_sizes(p, in);
  CHECK(s.N == 2 && s.R == 100 && s.C == 256 && s.H[0] == 256 && s.W[3] == 32 && s.H[2] == 64);
  CHECK_THROWS(with_runtime_sizes(p, {{-1, 100, 4}, in[1], in[2], in[3], in[4]}), "not fully known");
}

void test_shapes_proposal() {
  const auto p = parse_fields<ProposalLayerParams>({I("post_nms_topk", 250)});
  const std::vector<Dims> in = {{4, 16368}, {4, 16368, 4}, {16368, 4}};
  auto out = output_shapes(p, in);
  CHECK(out.size() == 2 && out[0] == (Dims{4, 250, 4}) && out[1] == (Dims{4}));
  CHECK(output_shapes(p, {{-1, -1}, {-1, -1, 4}, {-1, 4}})[0] == (Dims{-1, 250, 4}));
  CHECK_THROWS(output_shapes(p, {{4, 16368}, {4, 16368, 4}, {16000, 4}}), "A = 16368");
  CHECK_THROWS(output_shapes(p, {{4, 16368}, {4, 16368, 2}, {16368, 4}}), "deltas must be [N,A,4]");
  CHECK_THROWS(output_shapes(p, {{4, 16368}, {2, 16368, 4}, {16368, 4}}), "N = 4");
  CHECK_THROWS(output_shapes(p, {{4, 16368, 1}, {4, 16368, 4}, {16368, 4}}), "(scores) must have rank 2 [N,A]");
  const auto s = with_runtime_sizes(p, in);
  CHECK(s.N == 4 && s.A == 16368);
  // The kernel-only output (anchor index) follows the node outputs.
  out = output_shapes(p, in, /*with_extra=*/true);
  CHECK(out.size() == 3 && out[2] == (Dims{4, 250}));
  CHECK(output_dim_rules(p, 2).size() == 2);
  CHECK_THROWS(output_dim_rules(p, 3), "no output 3");
  const OpIO& io = op_io<ProposalLayerParams>();
  CHECK(io.nb_outputs == 2 && io.nb_extra_outputs == 1 && std::string(io.outputs[2].name) == "anchor_index");
  CHECK(io.nb_symbols == 2 && std::string(io.symbols[1].name) == "A");
}

void test_shapes_detection() {
  const auto p = parse_fields<DetectionLayerParams>({I("num_classes", 81), I("max_instances", 100)});
  const std::vector<Dims> in = {{2, 1000, 4}, {2}, {2, 1000, 81}, {2, 1000, 81, 4}, {2, 4}};
  auto out = output_shapes(p, in);
  CHECK(out.size() == 2 && out[0] == (Dims{2, 100, 6}) && out[1] == (Dims{2}));
  auto bad = in;
  bad[2] = {2, 1000, 9};
  CHECK_THROWS(output_shapes(p, bad), "num_classes = 81");
  bad = in;
  bad[3] = {2, 1000, 81, 5};
  CHECK_THROWS(output_shapes(p, bad), "deltas must be [N,R,81,4]");
  bad = in;
  bad[2] = {2, 999, 81};
  CHECK_THROWS(output_shapes(p, bad), "R = 1000");
  bad = in;
  bad[1] = {3};
  CHECK_THROWS(output_shapes(p, bad), "roi_count");
  bad = in;
  bad[4] = {2, 2};
  CHECK_THROWS(output_shapes(p, bad), "window must be [N,4]");
  const auto s = with_runtime_sizes(p, in);
  CHECK(s.N == 2 && s.R == 1000);
}

// ------------------------------------------------------------------- types
template <typename P>
int count_full_combinations(std::vector<std::vector<TType>>* found) {
  const OpIO& io = op_io<P>();
  const int n = io.nb_inputs + io.nb_outputs;
  const TType all[] = {TType::kFloat32, TType::kFloat16, TType::kInt32, TType::kOther};
  std::vector<TType> t(n);
  std::vector<char> lin(n, 1);
  bool linear[16];
  for (int i = 0; i < n; ++i) linear[i] = true;
  int total = 1, count = 0;
  for (int i = 0; i < n; ++i) total *= 4;
  for (int code = 0; code < total; ++code) {
    int c = code;
    for (int i = 0; i < n; ++i) {
      t[i] = all[c % 4];
      c /= 4;
    }
    bool ok = true;
    for (int pos = 0; pos < n && ok; ++pos) ok = supports_combination<P>(pos, t.data(), linear, io.nb_inputs, io.nb_outputs);
    if (ok) {
      ++count;
      found->push_back(t);
    }
  }
  return count;
}

void test_types() {
  // Exactly two complete combinations per op: data tensors all float32 or all float16.
  std::vector<std::vector<TType>> f;
  CHECK(count_full_combinations<PyramidROIAlignParams>(&f) == 2);
  CHECK(f.size() == 2 && f[0][0] == TType::kFloat32 && f[1][1] == TType::kFloat16 && f[1][5] == TType::kFloat16);
  f.clear();
  CHECK(count_full_combinations<ProposalLayerParams>(&f) == 2);
  CHECK(f[1][0] == TType::kFloat16 && f[1][2] == TType::kFloat32 && f[1][3] == TType::kFloat32 && f[1][4] == TType::kInt32);
  f.clear();
  CHECK(count_full_combinations<DetectionLayerParams>(&f) == 2);
  CHECK(f[1][1] == TType::kInt32 && f[1][2] == TType::kFloat16 && f[1][4] == TType::kFloat32 && f[1][5] == TType::kFloat32);

  // Position-wise answers as TensorRT asks them (only lower positions are set).
  TType t[5] = {TType::kFloat16, TType::kFloat32, TType::kFloat32, TType::kFloat32, TType::kInt32};
  bool linear[5] = {true, true, true, true, true};
  CHECK(supports_combination<ProposalLayerParams>(0, t, linear, 3, 2));
  CHECK(!supports_combination<ProposalLayerParams>(1, t, linear, 3, 2));  // deltas must follow scores
  t[1] = TType::kFloat16;
  CHECK(supports_combination<ProposalLayerParams>(1, t, linear, 3, 2));
  t[2] = TType::kFloat16;
  CHECK(!supports_combination<ProposalLayerParams>(2, t, linear, 3, 2));  // anchors stay float32
  CHECK(supports_combination<ProposalLayerParams>(4, t, linear, 3, 2));
  linear[4] = false;
  CHECK(!supports_combination<ProposalLayerParams>(4, t, linear, 3, 2));  // only linear layouts
  CHECK(!supports_combination<ProposalLayerParams>(0, t, linear, 2, 2));  // wrong input count
  CHECK(!supports_combination<ProposalLayerParams>(5, t, linear, 3, 2));  // out of range

  const TType roi_in[5] = {TType::kFloat32, TType::kFloat16, TType::kFloat16, TType::kFloat16, TType::kFloat16};
  CHECK(output_type<PyramidROIAlignParams>(0, roi_in, 5) == TType::kFloat16);
  CHECK(data_dtype<PyramidROIAlignParams>(roi_in, 5) == DType::kFloat16);
  const TType det_in[5] = {TType::kFloat32, TType::kInt32, TType::kFloat16, TType::kFloat16, TType::kFloat32};
  CHECK(output_type<DetectionLayerParams>(0, det_in, 5) == TType::kFloat32);
  CHECK(output_type<DetectionLayerParams>(1, det_in, 5) == TType::kInt32);
  CHECK(data_dtype<DetectionLayerParams>(det_in, 5) == DType::kFloat16);
  const TType det_bad[5] = {TType::kFloat32, TType::kInt32, TType::kInt32, TType::kFloat16, TType::kFloat32};
  CHECK_THROWS(data_dtype<DetectionLayerParams>(det_bad, 5), "probs must be float32 or float16");
  CHECK_THROWS(output_type<DetectionLayerParams>(2, det_in, 5), "no output 2");
  const OpIO& io = op_io<DetectionLayerParams>();
  CHECK(io.nb_inputs == 5 && io.nb_outputs == 2 && std::string(io.inputs[4].name) == "window");
}

// --------------------------------------------------------------- workspace
size_t fake_proposal_ws(const ProposalLayerParams& p) { return (size_t)p.N * (size_t)p.A * 20 + 1; }
size_t zero_ws(const ProposalLayerParams&) { return 0; }

void test_workspace() {
  const auto p = parse_fields<ProposalLayerParams>({});
  const size_t w = workspace_bytes(p, {{2, 1000}, {2, 1000, 4}, {1000, 4}}, fake_proposal_ws);
  CHECK(w == align_up(2 * 1000 * 20 + 1) + 256);
  CHECK(w % 256 == 0);
  CHECK(workspace_bytes(p, {{2, 1000}, {2, 1000, 4}, {1000, 4}}, zero_ws) == 0);
  CHECK_THROWS(workspace_bytes(p, {{-1, 1000}, {2, 1000, 4}, {1000, 4}}, fake_proposal_ws), "not fully known");
  CHECK(align_up(0) == 0 && align_up(1) == 256 && align_up(256) == 256 && align_up(257) == 512);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "--fields-json") == 0) {
    printf("%s\n", fields_json().c_str());
    return 0;
  }
  if (argc > 1 && strcmp(argv[1], "--contract-json") == 0) {
    printf("%s\n", contract_json().c_str());
    return 0;
  }
  test_parse_defaults();
  test_parse_values();
  test_parse_errors();
  test_fields_round_trip();
  test_serialization();
  test_shapes_roi_align();
  test_shapes_proposal();
  test_shapes_detection();
  test_types();
  test_workspace();
  printf("plugin_host_test: %d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
