"""torch.hub entry points: one per model of the zoo's registry ('-' in names becomes '_').

    model = torch.hub.load("<owner>/<repo>", "darts_cifar10", pretrained=False)
    model = torch.hub.load("<owner>/<repo>", "darts_ptb", pretrained=True)   # weights as zoo.load finds them

``pretrained=False`` builds the architecture (keyword arguments override constructor arguments,
e.g. ``num_classes=100``); ``pretrained=True`` loads the weights as ``zoo.load(name)`` does.
"""
dependencies = ["torch", "torchvision", "numpy", "safetensors", "huggingface_hub"]

import zoo as _zoo  # noqa: E402
from zoo.registry import info as _info  # noqa: E402
from zoo.registry import list_models as _list_models  # noqa: E402


def _entrypoint(name):
    def entry(pretrained=False, **kwargs):
        return _zoo.create_model(name, pretrained=pretrained, **kwargs)

    meta = _info(name)
    entry.__name__ = entry.__qualname__ = name.replace("-", "_")
    entry.__doc__ = (
        f"{meta['description']}\n\n"
        f"Registry name {name!r}; {meta['arch']} {meta['args']}; "
        f"weights: {meta['weights']}."
    )
    return entry


for _name in _list_models():
    globals()[_name.replace("-", "_")] = _entrypoint(_name)
del _name
