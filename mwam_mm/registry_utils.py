"""Registry helpers: building with an error that lists the nearest registered names.

mwam_mm registers its components in mmengine's root registries, the parents of
mmdet's and mmseg's, so the same unscoped type names resolve under
``default_scope='mmdet'`` and ``default_scope='mmseg'``; components built inside ours
(e.g. a backbone stream) go through the root registry too and so resolve in the
config's own scope.
"""
import difflib
import re
from typing import List, Optional

from mmengine.registry import DefaultScope, Registry

_UNKNOWN_TYPE = re.compile(r'(?P<name>[\w.]+) is not in the (?P<scope>\w+)::'
                           r'(?P<registry>\w+) registry')


def _registry_in_scope(registry: Registry, scope: Optional[str]) -> Registry:
    root = registry
    while root.parent is not None:
        root = root.parent
    if scope and scope != root.scope:
        child = root.children.get(scope)
        if child is not None:
            return child
    return registry


def registered_names(registry: Registry, scope: Optional[str] = None) -> List[str]:
    """Names visible from ``scope`` (default: the current default scope)."""
    if scope is None:
        current = DefaultScope.get_current_instance()
        scope = current.scope_name if current is not None else None
    reg = _registry_in_scope(registry, scope)
    reg.import_from_location()
    names = set()
    while reg is not None:
        names.update(reg.module_dict)
        reg = reg.parent
    return sorted(names)


def nearest_names(registry: Registry,
                  name: str,
                  scope: Optional[str] = None,
                  n: int = 5) -> List[str]:
    names = registered_names(registry, scope)
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.5)
    if len(close) < n:  # also names that contain it or that it contains
        lower = name.lower()
        close += [
            x for x in names
            if (lower in x.lower() or x.lower() in lower) and x not in close
        ]
    return close[:n]


def root_registry(name: str) -> Optional[Registry]:
    """mmengine's root registry called ``name`` ('model', 'dataset', ...)."""
    import mmengine.registry as registries
    for value in vars(registries).values():
        if isinstance(value, Registry) and value.name == name:
            return value
    return None


def explain_unknown_type(error: Exception,
                         registry: Optional[Registry] = None) -> Optional[str]:
    """A better message for mmengine's 'X is not in the ... registry' KeyError.

    Returns None when ``error`` is not such an error.
    """
    text = str(error.args[0]) if error.args else ''
    match = _UNKNOWN_TYPE.search(text)
    if not match:
        return None
    name, scope = match.group('name'), match.group('scope')
    registry = registry or root_registry(match.group('registry'))
    if registry is None:
        return None
    close = nearest_names(registry, name.split('.')[-1], scope)
    hint = (f' Nearest registered names: {", ".join(close)}.'
            if close else ' No similar name is registered.')
    return (f'{text}.{hint} If the component comes from a package, add it to '
            "custom_imports (e.g. custom_imports=dict(imports=['mwam_mm'])).")


def build_from_registry(registry: Registry, cfg: dict, **default_args):
    """``registry.build`` whose unknown-type error lists the nearest names."""
    try:
        return registry.build(cfg, default_args=default_args or None)
    except KeyError as e:
        message = explain_unknown_type(e, registry)
        if message is None:
            raise
        raise KeyError(message) from None
