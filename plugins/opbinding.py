"""How the network's call of an op reaches each implementation: one :class:`OpBinding` per op.

The network calls each op with the arguments of its PyTorch reference, e.g.
``ops.pyramid_roi_align(boxes, feature_maps, mask=True)`` or
``ops.proposal_layer(scores, deltas, anchors, training=True)``. The contract
(``opdefs.py``) says what the op takes (tensors, attributes); an op's binding,
declared in its own folder (``plugins/<torch_name>/binding.py``, ``BINDING``),
says the rest, which the generic ops backends (``model/backends.py``) and the
exporter's node emitter (``export/exporter.py``) read instead of a method per op:

* ``reference``: the pure-PyTorch reference (``plugins/<torch_name>/reference.py``),
  called as ``reference(*args, *attr_args(op, attrs))``; ``plugins.cpu.run`` and
  ``torch.ops.mrcnn.<torch_name>`` are reached by name from the contract;
* ``options``: the call's keyword options (each a bool, default False) and
  ``config(cfg, **options)``: the op's attributes for a config under those options
  (e.g. ``mask`` -> the mask head's pooled size, ``training`` -> the training
  number of proposals);
* ``inputs(*args)``: the call's arguments as the contract's input tensors, in
  contract order (e.g. ``feature_maps`` -> P2..P5);
* ``int64_outputs``: outputs the reference returns as int64 where the operators
  return the contract's int32 (converted with ``.long()``);
* ``grad_fallback``: the operators have no backward; when a data input needs a
  gradient, the ``native`` backend runs the reference instead.

What the network receives is the reference's return value: the contract's
outputs, then its kernel-only (extra) outputs, one tensor alone unwrapped
(:meth:`OpBinding.result`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from .opdefs import OP_DEFS, attrs_from_config, op_def, op_module


def _same_args(*args) -> list:
    return list(args)


@dataclass(frozen=True)
class OpBinding:
    op: str                                                  # contract name (OP_DEFS key)
    reference: Callable[..., Any]                            # (*args, *attributes in contract order)
    options: Tuple[str, ...] = ()                            # keyword options of the call (bools)
    config: Optional[Callable[..., Dict[str, Any]]] = None   # (cfg, **options) -> attributes
    inputs: Callable[..., list] = _same_args                 # (*args) -> contract input tensors
    int64_outputs: Tuple[str, ...] = ()                      # outputs returned as int64 (.long())
    grad_fallback: bool = False                              # run the reference where gradients flow

    @property
    def torch_name(self) -> str:
        return op_def(self.op).torch_name

    def attrs(self, cfg, **options) -> Dict[str, Any]:
        """The op's complete, validated attributes for ``cfg`` under ``options``."""
        if self.config is None:
            return attrs_from_config(cfg, self.op)
        return self.config(cfg, **options)

    def check_options(self, options: Dict[str, Any]) -> Tuple[bool, ...]:
        """``options`` of a call as a key (one bool per declared option); TypeError for an unknown one."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise TypeError(f"{self.torch_name}() got an unexpected keyword argument {unknown[0]!r}")
        return tuple(bool(options.get(o, False)) for o in self.options)

    def result(self, outputs: Sequence[Any]) -> Any:
        """What the network receives from the outputs then the extra outputs, in contract order:
        ``int64_outputs`` converted with ``.long()``, one output alone unwrapped."""
        d = op_def(self.op)
        names = [t.name for t in d.outputs + d.extra_outputs]
        outs = tuple(x.long() if x is not None and n in self.int64_outputs else x for n, x in zip(names, outputs))
        return outs[0] if len(outs) == 1 else outs


def load_bindings() -> Dict[str, OpBinding]:
    """Contract op -> its :class:`OpBinding`, for every op of ``OP_DEFS`` (imports the op
    folders' ``binding`` modules, hence torch). ValueError when an op has none."""
    out: Dict[str, OpBinding] = {}
    for op in OP_DEFS:
        module = op_module(op, "binding")
        if module is None:
            raise ValueError(f"op {op!r} of the contract has no binding "
                             f"(plugins/{op_def(op).torch_name}/binding.py declares BINDING)")
        b = module.BINDING
        if b.op != op:
            raise ValueError(f"{module.__name__}.BINDING is declared for {b.op!r}, not {op!r}")
        out[op] = b
    return out
