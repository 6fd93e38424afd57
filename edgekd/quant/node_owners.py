"""Which module runs each operation NNCF names: the map from NNCF node names to real module paths.

NNCF names an operation by the chain of *called* modules, each named relative to the one that called it. A module
held in a ModuleList and called from the list's owner (`self.top_down[i](x)`) is not a child of its caller, so
its level is dropped: `neck.top_down.1.main_conv.0`'s convolution is `neck/main_conv/0/conv2d/1` — the second
convolution among every CSP layer's `main_conv.0`. Reading module paths back out of such names goes wrong (all
four CSP layers collapse into `neck`), and a fallback pattern built from a module path matches nothing. So the
map is traced: one forward pass under NNCF's own naming, recording the module on top of the call stack for
every name it gives out.
"""

from __future__ import annotations

from typing import Any, Iterable

GRAPH_OWNER = "<graph>"  # an operation of the root module's own forward, or a model input


def node_owners(model: Any, example: Any) -> dict[str, str]:
    """{NNCF node name: dotted path of the innermost module running it} from one forward pass on `example`.

    `model` must be a float (not yet quantized) model; it is run in eval mode without gradients and left as
    it was. Operations of the root module's own forward map to GRAPH_OWNER.
    """
    import torch
    from nncf.torch.function_hook.hook_executor_mode import FunctionHookMode
    from nncf.torch.function_hook.hook_storage import HookStorage

    paths = {id(module): name for name, module in model.named_modules()}
    owners: dict[str, str] = {}

    class _Recorder(FunctionHookMode):
        def get_next_op_call_name(self, fn_name: str) -> str:
            name = super().get_next_op_call_name(fn_name)
            owners[name] = paths.get(id(self.module_call_stack[-1]), "") or GRAPH_OWNER
            return name

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _Recorder(model, HookStorage()):
            model(example)
    finally:
        model.train(was_training)
    return owners


def nodes_inside(owners: dict[str, str], module_paths: Iterable[str],
                 field: str = "quant.fallback") -> list[str]:
    """The node names run by each module in `module_paths` or its children; an EdgekdError names a module that
    runs no operation (never called in forward), since keeping it 'in float' would protect nothing."""
    from edgekd.errors import EdgekdError

    names: list[str] = []
    for path in module_paths:
        inside = [node for node, owner in owners.items() if is_inside(owner, [path])]
        if not inside:
            raise EdgekdError(f"{field}: module '{path}' runs no operation in the model's forward")
        names += inside
    return sorted(set(names))


def is_inside(owner: str, module_paths: Iterable[str]) -> bool:
    """Whether module path `owner` is one of `module_paths` or inside one of them."""
    return any(owner == path or owner.startswith(path + ".") for path in module_paths)
