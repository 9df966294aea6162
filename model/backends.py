"""Implementations of the custom ops that the network can call.

:class:`MaskRCNN` calls ``self.ops.proposal_layer``, ``pyramid_roi_align`` and
``detection_layer`` - one method per op of the contract (``plugins/opdefs.py``),
named by its ``torch_name`` and made here for every op, with the arguments of
the op's PyTorch reference. Which implementation runs is a swappable object:

* :class:`NativeOps` (``"native"``, the default) - the PyTorch operators
  ``torch.ops.mrcnn.*`` on whatever device the tensors are on: the C++ kernels
  on the CPU, the CUDA kernels on a GPU (``plugins/torch_ops.py``). Visible to
  ``torch.compile`` / ``torch.export`` as single operators. Fastest everywhere.
* :class:`TorchOps` (``"torch"``) - the pure-PyTorch references
  (``plugins/<op>/reference.py``; any device; the definition of the semantics;
  differentiable crops).
* :class:`CpuKernelOps` (``"cpu"``) - the compiled C++ CPU kernels called
  directly (``mrcnn_trt.plugins.cpu.run``; CPU results for any input device).

The exporter supplies its own (ONNX custom nodes, ``export/exporter.py``). No
backend names an op: what each op's call needs beyond the contract (its keyword
options, the config attributes they select, how its arguments map to the
contract's inputs, ...) is its :class:`~mrcnn_trt.plugins.opbinding.OpBinding`
in ``plugins/<op>/binding.py``; a backend implements :meth:`TorchOps.run`. The
attributes come from the config through the binding (``attrs_from_config``) and
are passed in the contract's order (``attr_args``).
"""
from __future__ import annotations

import itertools
from typing import Any, Dict, Sequence

import torch
from torch import Tensor

from ..errors import UserError
from ..plugins import cpu, torch_ops  # noqa: F401  (torch_ops registers torch.ops.mrcnn.*)
from ..plugins.opbinding import OpBinding, load_bindings
from ..plugins.opdefs import DOMAIN, OP_DEFS, attr_args

#: contract op -> how the network calls it (``plugins/<op>/binding.py``)
BINDINGS: Dict[str, OpBinding] = load_bindings()


class TorchOps:
    """The pure-PyTorch references; the base of every ops backend.

    ``ops.<torch_name>(*args, **options)`` runs :meth:`run` with the op's attributes
    for those options, computed once from ``config`` (so a bad config fails here)."""

    name = "torch"

    def __init__(self, config):
        self.config = config
        self._attrs = {(op, key): b.attrs(config, **dict(zip(b.options, key)))
                       for op, b in BINDINGS.items()
                       for key in itertools.product((False, True), repeat=len(b.options))}

    def attrs(self, op: str, **options) -> Dict[str, Any]:
        """The attributes of contract op ``op`` under the call's ``options`` (e.g. ``mask=True``)."""
        return self._attrs[(op, BINDINGS[op].check_options(options))]

    def call(self, op: str, *args, **options):
        """Contract op ``op`` on the network's arguments (those of its reference)."""
        return self.run(BINDINGS[op], args, self.attrs(op, **options))

    def run(self, b: OpBinding, args: Sequence[Any], attrs: Dict[str, Any]):
        """One op: the call's arguments ``args``, complete attributes ``attrs``. Here: the reference."""
        return b.reference(*args, *attr_args(b.op, attrs))


def _op_method(op: str):
    name = OP_DEFS[op].torch_name

    def method(self, *args, **options):
        return self.call(op, *args, **options)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"{op} (plugins/{name}): the arguments of its reference, then its keyword options."
    return method


for _op in OP_DEFS:     # one method per op of the contract: ops.proposal_layer(...), ...
    setattr(TorchOps, OP_DEFS[_op].torch_name, _op_method(_op))


def _cpu_kernels():
    """The compiled C++ kernels (``mrcnn_trt.plugins.cpu``); a one-line error when not built."""
    if not cpu.available():
        raise UserError("the compiled CPU kernels (mrcnn_trt.plugins._cpu) are not built; reinstall with "
                        "`pip install -e .` or use the reference ops (ops backend 'torch')")
    return cpu


def _same_data_dtype(tensors: Sequence[Tensor]) -> list:
    """The op contract's data tensors share one type: float16 when all are, else float32
    (e.g. float32 softmax probabilities beside float16 deltas under autocast)."""
    if all(t.dtype == torch.float16 for t in tensors):
        return list(tensors)
    return [t.float() for t in tensors]


def contract_inputs(op: str, inputs: Sequence[Tensor]) -> list:
    """``inputs`` (contract order) as the operators take them, detached (they have no
    backward): geometry float32, counts int32, the data tensors of one type."""
    d = OP_DEFS[op]
    data = _same_data_dtype([x.detach() for x, t in zip(inputs, d.inputs) if t.role == "data"])
    out, j = [], 0
    for x, t in zip(inputs, d.inputs):
        if t.role == "data":
            out.append(data[j])
            j += 1
        else:
            out.append(x.detach().int() if t.role == "i32" else x.detach().float())
    return out


class CpuKernelOps(TorchOps):
    """Same interface, running the compiled C++ kernels (results on the CPU)."""

    name = "cpu"

    def __init__(self, config):
        super().__init__(config)
        self._k = _cpu_kernels()

    def run(self, b, args, attrs):
        return b.result(self._k.run(b.op, contract_inputs(b.op, b.inputs(*args)), attrs))


class NativeOps(TorchOps):
    """``torch.ops.mrcnn.*`` on the tensors' device (C++ kernels on CPU, CUDA kernels on GPU).

    Same results as :class:`TorchOps` (bit for bit on CPU and CUDA except where
    PyTorch's float32 exp/log2 is off by an ulp). The operators have no
    backward: where autograd needs the gradient of an op whose binding says so
    (``grad_fallback``: the crops in training), the reference runs instead.
    """

    name = "native"

    def __init__(self, config):
        super().__init__(config)
        _cpu_kernels()
        self._operators = {op: getattr(getattr(torch.ops, DOMAIN), d.torch_name) for op, d in OP_DEFS.items()}

    def run(self, b, args, attrs):
        inputs = b.inputs(*args)
        if b.grad_fallback and torch.is_grad_enabled() and any(
                x.requires_grad for x, t in zip(inputs, OP_DEFS[b.op].inputs) if t.role == "data"):
            return super().run(b, args, attrs)
        outs = self._operators[b.op](*contract_inputs(b.op, inputs), *attr_args(b.op, attrs))
        return b.result((outs,) if isinstance(outs, Tensor) else outs)


#: ops backend name -> its class (the order of ``--ops`` choices)
OPS_BACKENDS = {"native": NativeOps, "torch": TorchOps, "cpu": CpuKernelOps}
BACKENDS = tuple(OPS_BACKENDS)
DEFAULT_BACKEND = "native"


def make_ops(config, backend: str = DEFAULT_BACKEND):
    """The ops object of ``backend`` (native | torch | cpu)."""
    if backend not in OPS_BACKENDS:
        raise ValueError(f"unknown ops backend {backend!r} ({'|'.join(BACKENDS)})")
    return OPS_BACKENDS[backend](config)
