'''TensorRT ONNX-parser operator support tables and a checker for exported models.

Sources (onnx/onnx-tensorrt, ``docs/operators.md``, read from git):
  * TensorRT 8.6: branch ``8.6-GA``, commit ee0b139bc68567a89618c1d84dcd461cc144aad4
    (file last changed in 6872a9473391a73b96741711d52b98c2c3e25146, "ONNX-TensorRT 8.6-EA release");
    "TensorRT 8.6 supports operators up to Opset 17".
  * TensorRT 10.x: branch ``10.1-GA``, commit 96e781103cfc4adf4a6bb557e94bac8e693f6f4c
    ("ONNX-TensorRT 10.1 GA release"; the header line still reads "TensorRT 10.0 supports operators in
    the inclusive range of opset 9 to opset 20"). Used for every 10.x as the conservative choice: a
    TensorRT 10.15 copy of the same file (seen in a code index, commit not recorded) documents opsets
    9..24 and marks every operator emitted by ``export/standardize.py`` supported with the same
    restrictions as below.

Restrictions that matter for the Mask R-CNN graphs, beyond the tables:
  * TopK: K <= 3840 in every TensorRT version (NVIDIA/TensorRT ``include/NvInfer.h``, ITopKLayer:
    "Currently only values up to 3840 are supported", 8.6.1 ``3d979324``, 10.4 ``c664ce22``,
    10.13.3 ``94e2b9ef``; operators.md 10.1: "`sorted` must be 1. `K` input must be less than 3840").
    K must be a build-time constant (initializer) for a static engine. Tie order is unspecified.
  * NonMaxSuppression: TensorRT's INMSLayer keeps a box when score > score_threshold and IoU <=
    iou_threshold (same as ONNX Runtime), but considers only the 5000 highest-scoring boxes per image
    (2000 on SM 5.3/6.2) and leaves the order of equal scores unspecified (NvInfer.h, INMSLayer);
    max_output_boxes_per_class / thresholds should be initializers; boxes and scores must be 3-D.
    Its output has a data-dependent number of rows (supported since TensorRT 8.5).
  * GridSample: 4-D input only (IGridSampleLayer). The importer (builtin_op_importers.cpp in 8.6-GA,
    onnxOpImporters.cpp in 10.1-GA) maps mode "bilinear" to linear, "bicubic" to cubic and anything
    else to *nearest*: the opset-20 spelling "linear" silently becomes nearest, so export GridSample
    with opset 16..19 ("bilinear") for TensorRT. TensorRT 8.6 parses opsets <= 17.
  * Round: IUnaryLayer kROUND rounds half to even (as ONNX). IsInf: supported from 8.6 (8.5: no).
  * INT64 tensors: TensorRT 8.6 casts them to INT32 (values clamped to +-INT_MAX); 10.x supports INT64.
  * ArgMax is a TopK(1): first-max tie breaking is not documented for TensorRT.
'''
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import onnx

from mrcnn_trt.plugins.opdefs import DOMAIN

# Operator -> (supported types, restrictions) as written in operators.md; ops marked "N" are listed apart.
_TRT8_6_SUPPORTED: Dict[str, Tuple[str, str]] = {
    'Abs': ('FP32, FP16, INT32', ''),
    'Acos': ('FP32, FP16', ''),
    'Acosh': ('FP32, FP16', ''),
    'Add': ('FP32, FP16, INT32', ''),
    'And': ('BOOL', ''),
    'ArgMax': ('FP32, FP16, INT32', ''),
    'ArgMin': ('FP32, FP16, INT32', ''),
    'Asin': ('FP32, FP16', ''),
    'Asinh': ('FP32, FP16', ''),
    'Atan': ('FP32, FP16', ''),
    'Atanh': ('FP32, FP16', ''),
    'AveragePool': ('FP32, FP16, INT8, INT32', '2D or 3D Pooling only'),
    'BatchNormalization': ('FP32, FP16', ''),
    'Cast': ('FP32, FP16, INT32, INT8, UINT8, BOOL', ''),
    'Ceil': ('FP32, FP16', ''),
    'Celu': ('FP32, FP16', ''),
    'Clip': ('FP32, FP16, INT8', ''),
    'Concat': ('FP32, FP16, INT32, INT8, BOOL', ''),
    'Constant': ('FP32, FP16, INT32, INT8, BOOL', ''),
    'ConstantOfShape': ('FP32', ''),
    'Conv': ('FP32, FP16, INT8', ''),
    'ConvTranspose': ('FP32, FP16, INT8', ''),
    'Cos': ('FP32, FP16', ''),
    'Cosh': ('FP32, FP16', ''),
    'CumSum': ('FP32, FP16', '`axis` must be an initializer'),
    'DepthToSpace': ('FP32, FP16, INT32', ''),
    'DequantizeLinear': ('INT8', '`x_zero_point` must be zero'),
    'Div': ('FP32, FP16, INT32', ''),
    'Dropout': ('FP32, FP16', ''),
    'Einsum': ('FP32, FP16', 'Ellipsis and diagonal operations are not supported. Broadcasting between inputs is not supported'),
    'Elu': ('FP32, FP16, INT8', ''),
    'Equal': ('FP32, FP16, INT32', ''),
    'Erf': ('FP32, FP16', ''),
    'Exp': ('FP32, FP16', ''),
    'Expand': ('FP32, FP16, INT32, BOOL', ''),
    'EyeLike': ('FP32, FP16, INT32, BOOL', ''),
    'Flatten': ('FP32, FP16, INT32, BOOL', ''),
    'Floor': ('FP32, FP16', ''),
    'Gather': ('FP32, FP16, INT8, INT32, BOOL', ''),
    'GatherElements': ('FP32, FP16, INT8, INT32, BOOL', ''),
    'GatherND': ('FP32, FP16, INT8, INT32, BOOL', ''),
    'Gemm': ('FP32, FP16, INT8', ''),
    'GlobalAveragePool': ('FP32, FP16, INT8', ''),
    'GlobalLpPool': ('FP32, FP16, INT8', ''),
    'GlobalMaxPool': ('FP32, FP16, INT8', ''),
    'Greater': ('FP32, FP16, INT32', ''),
    'GreaterOrEqual': ('FP32, FP16, INT32', ''),
    'GridSample': ('FP32, FP16', ''),
    'GroupNormalization': ('FP32, FP16', ''),
    'GRU': ('FP32, FP16', 'For bidirectional GRUs, activation functions must be the same for both the forward and reverse pass'),
    'HardSwish': ('FP32, FP16, INT8', ''),
    'HardSigmoid': ('FP32, FP16, INT8', ''),
    'Identity': ('FP32, FP16, INT32, INT8, BOOL', ''),
    'If': ('FP32, FP16, INT32, BOOL', 'Output tensors of the two conditional branches must have broadcastable shapes, and must have different names'),
    'ImageScaler': ('FP32, FP16', ''),
    'InstanceNormalization': ('FP32, FP16', ''),
    'IsInf': ('FP32, FP16', ''),
    'IsNaN': ('FP32, FP16, INT32', ''),
    'LayerNormalization': ('FP32, FP16', ''),
    'LeakyRelu': ('FP32, FP16, INT8', ''),
    'Less': ('FP32, FP16, INT32', ''),
    'LessOrEqual': ('FP32, FP16, INT32', ''),
    'Log': ('FP32, FP16', ''),
    'LogSoftmax': ('FP32, FP16', ''),
    'Loop': ('FP32, FP16, INT32, BOOL', ''),
    'LRN': ('FP32, FP16', ''),
    'LSTM': ('FP32, FP16', 'For bidirectional LSTMs, activation functions must be the same for both the forward and reverse pass'),
    'LpNormalization': ('FP32, FP16', ''),
    'LpPool': ('FP32, FP16, INT8', ''),
    'MatMul': ('FP32, FP16', ''),
    'Max': ('FP32, FP16, INT32', ''),
    'MaxPool': ('FP32, FP16, INT8', '2D or 3D pooling only. `Indices` output tensor unsupported'),
    'Mean': ('FP32, FP16, INT32', ''),
    'MeanVarianceNormalization': ('FP32, FP16', ''),
    'Min': ('FP32, FP16, INT32', ''),
    'Mod': ('FP32, FP16, INT32', ''),
    'Mul': ('FP32, FP16, INT32', ''),
    'Neg': ('FP32, FP16, INT32', ''),
    'NonMaxSuppression': ('FP32, FP16', ''),
    'NonZero': ('FP32, FP16', ''),
    'Not': ('BOOL', ''),
    'OneHot': ('FP32, FP16, INT32, BOOL', ''),
    'Or': ('BOOL', ''),
    'Pad': ('FP32, FP16, INT8, INT32', ''),
    'ParametricSoftplus': ('FP32, FP16, INT8', ''),
    'Pow': ('FP32, FP16', ''),
    'PRelu': ('FP32, FP16, INT8', ''),
    'QuantizeLinear': ('FP32, FP16', '`y_zero_point` must be 0'),
    'RandomNormal': ('FP32, FP16', '`seed` value is ignored by TensorRT'),
    'RandomNormalLike': ('FP32, FP16', '`seed` value is ignored by TensorRT'),
    'RandomUniform': ('FP32, FP16', '`seed` value is ignored by TensorRT'),
    'RandomUniformLike': ('FP32, FP16', '`seed` value is ignored by TensorRT'),
    'Range': ('FP32, FP16, INT32', ''),
    'Reciprocal': ('FP32, FP16', ''),
    'ReduceL1': ('FP32, FP16', ''),
    'ReduceL2': ('FP32, FP16', ''),
    'ReduceLogSum': ('FP32, FP16', ''),
    'ReduceLogSumExp': ('FP32, FP16', ''),
    'ReduceMax': ('FP32, FP16', ''),
    'ReduceMean': ('FP32, FP16', ''),
    'ReduceMin': ('FP32, FP16', ''),
    'ReduceProd': ('FP32, FP16', ''),
    'ReduceSum': ('FP32, FP16', ''),
    'ReduceSumSquare': ('FP32, FP16', ''),
    'Relu': ('FP32, FP16, INT8', ''),
    'Reshape': ('FP32, FP16, INT32, INT8, BOOL', ''),
    'Resize': ('FP32, FP16', 'Supported resize transformation modes: `half_pixel`, `pytorch_half_pixel`, `tf_half_pixel_for_nn`, `asymmetric`, and `align_corners`. Supported resize modes: `nearest`, `linear`. Supported nearest modes: `floor`, `ceil`, `round_prefer_floor`, `round_prefer_ceil`'),
    'ReverseSequence': ('FP32, FP16, INT32, INT8, BOOL', ''),
    'RNN': ('FP32, FP16', 'For bidirectional RNNs, activation functions must be the same for both the forward and reverse pass'),
    'RoiAlign': ('FP32, FP16', ''),
    'Round': ('FP32, FP16, INT8', ''),
    'ScaledTanh': ('FP32, FP16, INT8', ''),
    'Scan': ('FP32, FP16', ''),
    'Scatter': ('FP32, FP16, INT8, INT32', ''),
    'ScatterElements': ('FP32, FP16, INT8, INT32', ''),
    'ScatterND': ('FP32, FP16, INT8, INT32', ''),
    'Selu': ('FP32, FP16, INT8', ''),
    'Shape': ('FP32, FP16, INT32, INT8, BOOL', ''),
    'Shrink': ('FP32, FP16, INT32', ''),
    'Sigmoid': ('FP32, FP16, INT8', ''),
    'Sign': ('FP32, FP16, INT8, INT32', ''),
    'Sin': ('FP32, FP16', ''),
    'Sinh': ('FP32, FP16', ''),
    'Size': ('FP32, FP16, INT32, INT8, BOOL', ''),
    'Slice': ('FP32, FP16, INT32, INT8, BOOL', '`axes` must be an initializer'),
    'Softmax': ('FP32, FP16', ''),
    'Softplus': ('FP32, FP16, INT8', ''),
    'Softsign': ('FP32, FP16, INT8', ''),
    'SpaceToDepth': ('FP32, FP16, INT32', ''),
    'Split': ('FP32, FP16, INT32, BOOL', ''),
    'Sqrt': ('FP32, FP16', ''),
    'Squeeze': ('FP32, FP16, INT32, INT8, BOOL', '`axes` must be an initializer'),
    'Sub': ('FP32, FP16, INT32', ''),
    'Sum': ('FP32, FP16, INT32', ''),
    'Tan': ('FP32, FP16', ''),
    'Tanh': ('FP32, FP16, INT8', ''),
    'ThresholdedRelu': ('FP32, FP16, INT8', ''),
    'Tile': ('FP32, FP16, INT32, BOOL', ''),
    'TopK': ('FP32, FP16, INT32', ''),
    'Transpose': ('FP32, FP16, INT32, INT8, BOOL', ''),
    'Trilu': ('FP32, FP16, INT32, INT8, BOOL', ''),
    'Unsqueeze': ('FP32, FP16, INT32, INT8, BOOL', '`axes` must be a constant tensor'),
    'Upsample': ('FP32, FP16', ''),
    'Where': ('FP32, FP16, INT32, BOOL', ''),
    'Xor': ('BOOL', ''),
}
_TRT8_6_UNSUPPORTED = frozenset({
    'Bernoulli', 'BitShift', 'BlackmanWindow', 'Compress', 'ConcatFromSequence', 'ConvInteger', 'DFT', 'Det',
    'DynamicQuantizeLinear', 'HammingWindow', 'HannWindow', 'Hardmax', 'MatMulInteger', 'MaxRoiPool',
    'MaxUnpool', 'MelWeightMatrix', 'Multinomial', 'NegativeLogLikelihoodLoss', 'Optional',
    'OptionalGetElement', 'OptionalHasElement', 'QLinearConv', 'QLinearMatMul', 'STFT', 'SequenceAt',
    'SequenceConstruct', 'SequenceEmpty', 'SequenceErase', 'SequenceInsert', 'SequenceLength', 'SequenceMap',
    'SoftmaxCrossEntropyLoss', 'SplitToSequence', 'StringNormalizer', 'TfIdfVectorizer', 'Unique',
})

_TRT10_1_SUPPORTED: Dict[str, Tuple[str, str]] = {
    'Abs': ('FP32, FP16, BF16, INT32, INT64', ''),
    'Acos': ('FP32, FP16, BF16', ''),
    'Acosh': ('FP32, FP16, BF16', ''),
    'Add': ('FP32, FP16, BF16, INT32, INT64', ''),
    'And': ('BOOL', ''),
    'ArgMax': ('FP32, FP16, BF16, INT32, INT64', ''),
    'ArgMin': ('FP32, FP16, BF16, INT32, INT64', ''),
    'Asin': ('FP32, FP16, BF16', ''),
    'Asinh': ('FP32, FP16, BF16', ''),
    'Atan': ('FP32, FP16, BF16', ''),
    'Atanh': ('FP32, FP16, BF16', ''),
    'AveragePool': ('FP32, FP16, BF16', '2D or 3D Pooling only. `dilations` must be empty or all ones'),
    'BatchNormalization': ('FP32, FP16, BF16', ''),
    'Cast': ('FP32, FP16, BF16, INT32, INT64, UINT8, BOOL', ''),
    'CastLike': ('FP32, FP16, BF16, INT32, INT64, UINT8, BOOL', ''),
    'Ceil': ('FP32, FP16, BF16', ''),
    'Celu': ('FP32, FP16, BF16', ''),
    'Clip': ('FP32, FP16, BF16', ''),
    'Concat': ('FP32, FP16, BF16, INT32, INT64, BOOL', ''),
    'Constant': ('FP32, FP16, BF16, INT32, INT64, BOOL', '`sparse_value`, `value_string`, and `value_strings` attributes are unsupported.'),
    'ConstantOfShape': ('FP32, FP16, BF16, INT32, INF64, BOOL', ''),
    'Conv': ('FP32, FP16, BF16', ''),
    'ConvTranspose': ('FP32, FP16, BF16', ''),
    'Cos': ('FP32, FP16, BF16', ''),
    'Cosh': ('FP32, FP16, BF16', ''),
    'CumSum': ('FP32, FP16, BF16', '`axis` must be an initializer'),
    'DeformConv': ('FP32, FP16', '`input` must have 1D or 2D spatial dimensions. `pads` for the beginning and end along each spatial axis must be the same'),
    'DepthToSpace': ('FP32, FP16, BF16, INT32, INT64', ''),
    'DequantizeLinear': ('INT8, FP8, INT4', '`x_zero_point` must be zero'),
    'Div': ('FP32, FP16, BF16, INT32, INT64', ''),
    'Dropout': ('FP32, FP16, BF16', '`is_traning` must be an initializer and evaluate to False.'),
    'Einsum': ('FP32, FP16, BF16', ''),
    'Elu': ('FP32, FP16, BF16', ''),
    'Equal': ('FP32, FP16, BF16, INT32, INT64', ''),
    'Erf': ('FP32, FP16, BF16', ''),
    'Exp': ('FP32, FP16, BF16', ''),
    'Expand': ('FP32, FP16, BF16, INT32, INT64, BOOL', ''),
    'EyeLike': ('FP32, FP16, BF16, INT32, INT64, BOOL', '`input` must have static dimensions'),
    'Flatten': ('FP32, FP16, BF16, INT32, INT64, BOOL', ''),
    'Floor': ('FP32, FP16, BF16', ''),
    'Gather': ('FP32, FP16, BF16, INT32, INT64, BOOL', ''),
    'GatherElements': ('FP32, FP16, BF16, INT32, INT64, BOOL', ''),
    'GatherND': ('FP32, FP16, BF16, INT32, INT64, BOOL', ''),
    'Gelu': ('FP32, FP16, BF16, INT8, INT32, INT64', ''),
    'Gemm': ('FP32, FP16, BF16', ''),
    'GlobalAveragePool': ('FP32, FP16, BF16', ''),
    'GlobalLpPool': ('FP32, FP16, BF16', ''),
    'GlobalMaxPool': ('FP32, FP16, BF16', ''),
    'Greater': ('FP32, FP16, BF16, INT32, INT64', ''),
    'GreaterOrEqual': ('FP32, FP16, BF16, INT32, INT64', ''),
    'GridSample': ('FP32, FP16', 'Input must be 4D input.'),
    'GroupNormalization': ('FP32, FP16, BF16', ''),
    'GRU': ('FP32, FP16, BF16', 'For bidirectional GRUs, activation functions must be the same for both the forward and reverse pass'),
    'HardSigmoid': ('FP32, FP16, BF16', ''),
    'HardSwish': ('FP32, FP16, BF16', ''),
    'Hardmax': ('FP32, FP16, BF16', '`axis` dimension of input must be a build-time constant'),
    'Identity': ('FP32, FP16, BF16, INT32, INT64, BOOL', ''),
    'If': ('FP32, FP16, BF16, INT32, INT64, BOOL', 'Output tensors of the two conditional branches must have the same rank and must have different names'),
    'ImageScaler': ('FP32, FP16, BF16', ''),
    'InstanceNormalization': ('FP32, FP16, BF16', ''),
    'IsInf': ('FP32, FP16, BF16', ''),
    'IsNaN': ('FP32, FP16, BF16, INT32, INT64', ''),
    'LayerNormalization': ('FP32, FP16, BF16', 'Only the first output `Y` is supported.'),
    'LeakyRelu': ('FP32, FP16, BF16', ''),
    'Less': ('FP32, FP16, BF16, INT32, INT64', ''),
    'LessOrEqual': ('FP32, FP16, BF16, INT32, INT64', ''),
    'Log': ('FP32, FP16, BF16', ''),
    'LogSoftmax': ('FP32, FP16, BF16', ''),
    'Loop': ('FP32, FP16, BF16, INT32, INT64, BOOL', 'Scan output length cannot be dynamic. The shape of Loop carried dependencies must be the same across all loop iterations.'),
    'LRN': ('FP32, FP16, BF16', ''),
    'LSTM': ('FP32, FP16, BF16', 'For bidirectional LSTMs, activation functions must be the same for both the forward and reverse pass. `input_forget` attribute must be 0. `layout` attribute must be 0.'),
    'LpNormalization': ('FP32, FP16, BF16', ''),
    'LpPool': ('FP32, FP16, BF16', '`dilations` must be empty or all ones'),
    'MatMul': ('FP32, FP16, BF16', ''),
    'Max': ('FP32, FP16, BF16, INT32, INT64', ''),
    'MaxPool': ('FP32, FP16, BF16', '2D or 3D pooling only. `Indices` output tensor unsupported. `dilations` must be empty or all ones'),
    'Mean': ('FP32, FP16, BF16, FP8, INT32, INT64', ''),
    'MeanVarianceNormalization': ('FP32, FP16, BF16', ''),
    'Min': ('FP32, FP16, BF16, INT32, INT64', ''),
    'Mish': ('FP32, FP16', ''),
    'Mod': ('FP32, FP16, BF16, INT32, INT64', ''),
    'Mul': ('FP32, FP16, BF16, INT32, INT64', ''),
    'Neg': ('FP32, FP16, BF16, INT32, INT64', ''),
    'NonMaxSuppression': ('FP32, FP16', ''),
    'NonZero': ('FP32, FP16', ''),
    'Not': ('BOOL', ''),
    'OneHot': ('FP32, FP16, BF16, INT32, INT64, BOOL', '`depth` must be a build-time constant'),
    'Or': ('BOOL', ''),
    'Pad': ('FP32, FP16, BF16, INT32, INT64', '`axes` must be an initializer'),
    'ParametricSoftplus': ('FP32, FP16, BF16', ''),
    'Pow': ('FP32, FP16, BF16', ''),
    'PRelu': ('FP32, FP16, BF16', ''),
    'QuantizeLinear': ('FP32, FP16, BF16', '`y_zero_point` must be 0'),
    'RandomNormal': ('FP32, FP16, BF16', '`seed` value is ignored by TensorRT'),
    'RandomNormalLike': ('FP32, FP16, BF16', '`seed` value is ignored by TensorRT'),
    'RandomUniform': ('FP32, FP16, BF16', '`seed` value is ignored by TensorRT'),
    'RandomUniformLike': ('FP32, FP16, BF16', '`seed` value is ignored by TensorRT'),
    'Range': ('FP32, FP16, BF16, INT32, INT64', ''),
    'Reciprocal': ('FP32, FP16, BF16', ''),
    'ReduceL1': ('FP32, FP16, BF16, INT32, INT64', '`axes` must be an initializer'),
    'ReduceL2': ('FP32, FP16, BF16, INT32, INT64', '`axes` must be an initializer'),
    'ReduceLogSum': ('FP32, FP16, BF16, INT32, INT64', '`axes` must be an initializer'),
    'ReduceLogSumExp': ('FP32, FP16, BF16, INT32, INT64', '`axes` must be an initializer'),
    'ReduceMax': ('FP32, FP16, BF16, INT32, INT64', '`axes` must be an initializer'),
    'ReduceMean': ('FP32, FP16, BF16, INT32, INT64', '`axes` must be an initializer'),
    'ReduceMin': ('FP32, FP16, BF16, INT32, INT64', '`axes` must be an initializer'),
    'ReduceProd': ('FP32, FP16, BF16, INT32, INT64', '`axes` must be an initializer'),
    'ReduceSum': ('FP32, FP16, BF16, INT32, INT64', '`axes` must be an initializer'),
    'ReduceSumSquare': ('FP32, FP16, BF16, INT32, INT64', '`axes` must be an initializer'),
    'Relu': ('FP32, FP16, BF16, INT32, INT64', ''),
    'Reshape': ('FP32, FP16, BF16, INT32, INT64, BOOL', ''),
    'Resize': ('FP32, FP16, BF16', 'Supported resize transformation modes: `half_pixel`, `pytorch_half_pixel`, `tf_half_pixel_for_nn`, `asymmetric`, and `align_corners`. Supported resize modes: `nearest`, `linear`. Supported nearest modes: `floor`, `ceil`, `round_prefer_floor`, `round_prefer_ceil`. Supported aspect ratio policy: `stretch`. When `scales` is a tensor input, `axes` must be an iota vector of length rank(input). Antialiasing is not supported.'),
    'ReverseSequence': ('FP32, FP16, BF16, INT32, INT64, BOOL', ''),
    'RNN': ('FP32, FP16, BF16', 'For bidirectional RNNs, activation functions must be the same for both the forward and reverse pass'),
    'RoiAlign': ('FP32, FP16', ''),
    'Round': ('FP32, FP16, BF16', ''),
    'ScaledTanh': ('FP32, FP16, BF16', ''),
    'Scan': ('FP32, FP16, BF16', ''),
    'Scatter': ('FP32, FP16, BF16, INT32, INT64', ''),
    'ScatterElements': ('FP32, FP16, BF16, INT32, INT64', ''),
    'ScatterND': ('FP32, FP16, BF16, INT32, INT64', '`reduction` is not supported'),
    'Selu': ('FP32, FP16, BF16', ''),
    'Shape': ('FP32, FP16, BF16, INT32, INT64, BOOL', ''),
    'Shrink': ('FP32, FP16, BF16, INT32, INT64', ''),
    'Sigmoid': ('FP32, FP16, BF16', ''),
    'Sign': ('FP32, FP16, BF16, INT32, INT64', ''),
    'Sin': ('FP32, FP16, BF16', ''),
    'Sinh': ('FP32, FP16, BF16', ''),
    'Size': ('FP32, FP16, BF16, INT32, INT64, BOOL', ''),
    'Slice': ('FP32, FP16, BF16, INT32, INT64, BOOL', '`axes` must be an initializer'),
    'Softmax': ('FP32, FP16, BF16', ''),
    'Softplus': ('FP32, FP16, BF16', ''),
    'Softsign': ('FP32, FP16, BF16', ''),
    'SpaceToDepth': ('FP32, FP16, BF16, INT32, INT64', ''),
    'Split': ('FP32, FP16, BF16, INT32, INT64, BOOL', ''),
    'Sqrt': ('FP32, FP16, BF16', ''),
    'Squeeze': ('FP32, FP16, BF16, INT32, INT64, BOOL', '`axes` must be an initializer'),
    'Sub': ('FP32, FP16, BF16, INT32, INT64', ''),
    'Sum': ('FP32, FP16, BF16, INT32, INT64', ''),
    'Tan': ('FP32, FP16, BF16', ''),
    'Tanh': ('FP32, FP16, BF16', ''),
    'ThresholdedRelu': ('FP32, FP16, BF16', ''),
    'Tile': ('FP32, FP16, BF16, INT32, INT64, BOOL', ''),
    'TopK': ('FP32, FP16, BF16, INT32, INT64', '`sorted` must be 1. `K` input must be less than 3840.'),
    'Transpose': ('FP32, FP16, BF16, INT32, INT64, BOOL', ''),
    'Trilu': ('FP32, FP16, BF16, INT32, INT64, BOOL', ''),
    'Unsqueeze': ('FP32, FP16, BF16, INT32, INT64, BOOL', '`axes` must be a constant tensor'),
    'Upsample': ('FP32, FP16, BF16', ''),
    'Where': ('FP32, FP16, BF16, INT32, INT64, BOOL', ''),
    'Xor': ('BOOL', ''),
}
_TRT10_1_UNSUPPORTED = frozenset({
    'AffineGrid', 'Bernoulli', 'BitShift', 'BitwiseAnd', 'BitwiseNot', 'BitwiseOr', 'BitwiseXor',
    'BlackmanWindow', 'CenterCropPad', 'Col2Im', 'Compress', 'ConcatFromSequence', 'ConvInteger', 'DFT',
    'Det', 'DynamicQuantizeLinear', 'HammingWindow', 'HannWindow', 'ImageDecoder', 'MatMulInteger',
    'MaxRoiPool', 'MaxUnpool', 'MelWeightMatrix', 'Multinomial', 'NegativeLogLikelihoodLoss', 'Optional',
    'OptionalGetElement', 'OptionalHasElement', 'QLinearConv', 'QLinearMatMul', 'RegexFullMatch', 'STFT',
    'SequenceAt', 'SequenceConstruct', 'SequenceEmpty', 'SequenceErase', 'SequenceInsert', 'SequenceLength',
    'SequenceMap', 'SoftmaxCrossEntropyLoss', 'SplitToSequence', 'StringConcat', 'StringNormalizer',
    'StringSplit', 'TfIdfVectorizer', 'Unique',
})
TABLES = {
    "8.6": (_TRT8_6_SUPPORTED, _TRT8_6_UNSUPPORTED),
    "10": (_TRT10_1_SUPPORTED, _TRT10_1_UNSUPPORTED),
}
OPSET_RANGE = {"8.6": (7, 17), "10": (9, 20)}   # ai.onnx opsets the parser documents
SOURCES = {
    "8.6": "onnx/onnx-tensorrt docs/operators.md @ 8.6-GA (ee0b139bc68567a89618c1d84dcd461cc144aad4)",
    "10": "onnx/onnx-tensorrt docs/operators.md @ 10.1-GA (96e781103cfc4adf4a6bb557e94bac8e693f6f4c)",
}
#: TensorRT ITopKLayer: "Currently only values up to 3840 are supported" (every release; see above)
TOPK_MAX_K = 3840
NMS_MAX_BOXES = 5000         # per image (2000 on SM 5.3 / 6.2)


def table_key(trt_version: str) -> str:
    """'8.6', '8.6.1.6' -> '8.6'; '10', '10.4.0' -> '10'. Raises ValueError for other versions."""
    parts = str(trt_version).strip().split(".")
    try:
        major = int(parts[0])
        minor = int(parts[1]) if len(parts) > 1 and parts[1] else None
    except ValueError:
        raise ValueError(f"bad TensorRT version {trt_version!r}") from None
    if major == 8 and minor == 6:
        return "8.6"
    if major == 10:
        return "10"
    raise ValueError(f"no operator table for TensorRT {trt_version}; known: 8.6, 10.x")


def op_support(op_type: str, trt_version: str) -> Optional[Tuple[str, str]]:
    """(types, restrictions) when ``op_type`` (ai.onnx) is supported by that TensorRT's parser, else None."""
    supported, _ = TABLES[table_key(trt_version)]
    return supported.get(op_type)


def _const_values(graph: onnx.GraphProto) -> Dict[str, object]:
    from onnx import numpy_helper
    vals: Dict[str, object] = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for a in node.attribute:
                if a.name == "value":
                    vals[node.output[0]] = numpy_helper.to_array(a.t)
    return vals


def _dims(model: onnx.ModelProto) -> Dict[str, Tuple[Optional[int], ...]]:
    g = model.graph
    out: Dict[str, Tuple[Optional[int], ...]] = {}
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        t = vi.type.tensor_type
        if t.HasField("shape"):
            out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
    for init in g.initializer:
        out[init.name] = tuple(init.dims)
    return out


def check_trt_supported(model: onnx.ModelProto, trt_version: str, *, include_warnings: bool = False) -> List[str]:
    """Problems that stop TensorRT ``trt_version``'s ONNX parser (no plugins) from building ``model``.

    Checks: ai.onnx opset within the documented range; every node is an ai.onnx op marked supported;
    no custom-domain node (``mrcnn`` ops need the plugin library: use the standard flavor or load the
    plugins); TopK K is an initializer <= 3840 and sorted=1; NonMaxSuppression's max_output / thresholds
    are initializers; GridSample is 4-D with mode "bilinear". With ``include_warnings``, lines starting
    with "warning:" flag results that may differ from ONNX Runtime (NMS over more than 5000 boxes).
    Returns one line per problem (empty list: nothing found). Subgraphs (If/Loop bodies) are checked too.
    """
    key = table_key(trt_version)
    supported, unsupported = TABLES[key]
    lo, hi = OPSET_RANGE[key]
    problems: List[str] = []
    warnings: List[str] = []
    tag = f"TensorRT {trt_version}"
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx") and not lo <= o.version <= hi:
            problems.append(f"ai.onnx opset {o.version} is outside {lo}..{hi} documented for {tag}")
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001
        inferred = model
    dims = _dims(inferred)

    def walk(graph: onnx.GraphProto):
        consts = _const_values(graph)
        for node in graph.node:
            where = f"node {node.name or '<unnamed>'} ({node.op_type})"
            if node.domain not in ("", "ai.onnx"):
                hint = " (custom op: needs the plugin library, or export --flavor standard)" \
                    if node.domain == DOMAIN else ""
                problems.append(f"{where}: domain {node.domain!r} is not built into {tag}{hint}")
                continue
            if node.op_type not in supported:
                state = "marked unsupported" if node.op_type in unsupported else "not listed"
                problems.append(f"{where}: {state} in the {tag} ONNX parser ({SOURCES[key]})")
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if node.op_type == "TopK":
                kname = node.input[1] if len(node.input) > 1 else ""
                if kname not in consts:
                    problems.append(f"{where}: K is not an initializer/Constant")
                else:
                    k = int(consts[kname].reshape(-1)[0])
                    if k > TOPK_MAX_K:
                        problems.append(f"{where}: K = {k} exceeds TensorRT's TopK limit {TOPK_MAX_K}")
                if int(attrs.get("sorted", 1)) != 1:
                    problems.append(f"{where}: sorted=0 is not supported")
            elif node.op_type == "NonMaxSuppression":
                for i, what in ((2, "max_output_boxes_per_class"), (3, "iou_threshold"), (4, "score_threshold")):
                    if len(node.input) > i and node.input[i] and node.input[i] not in consts:
                        problems.append(f"{where}: {what} is not an initializer/Constant")
                bd = dims.get(node.input[0])
                if bd is not None and len(bd) != 3:
                    problems.append(f"{where}: boxes must be 3-D, got rank {len(bd)}")
                if bd is not None and len(bd) == 3 and (bd[1] is None or bd[1] > NMS_MAX_BOXES):
                    warnings.append(f"warning: {where}: {bd[1] or 'dynamic'} boxes per image; TensorRT's NMS "
                                    f"considers only the {NMS_MAX_BOXES} highest-scoring ones (2000 on SM 5.3/6.2)")
            elif node.op_type == "GridSample":
                mode = attrs.get("mode", "bilinear")
                mode = mode.decode() if isinstance(mode, bytes) else mode
                if mode != "bilinear" and mode != "nearest" and mode != "bicubic":
                    problems.append(f"{where}: mode {mode!r} is imported as nearest by the onnx-tensorrt "
                                    f"GridSample importer (only 'bilinear' maps to linear); export with opset <= 19")
                xd = dims.get(node.input[0])
                if xd is not None and len(xd) != 4:
                    problems.append(f"{where}: input must be 4-D, got rank {len(xd)}")
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for sg in a.graphs:
                        walk(sg)

    walk(model.graph)
    return problems + (warnings if include_warnings else [])
