"""Find a plugin module by name and build the trigger or worker it defines.

Resolves `module:` (MarketStore spelling, entry point, or dotted module path, looked up in
the installed packages, PYTHONPATH and the configured `plugin_paths`, never implicitly in the
current directory) and calls its constructor; every failure becomes a `PluginError` naming
the plugin. Contracts: plugins.base.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import re
import sys
import threading
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from mkts.engine import BgWorker, Trigger
from mkts.engine.entrypoints import entry_point
from mkts.plugins.errors import ConfigError, PluginError

__all__ = ["load_trigger", "load_worker", "resolve", "TRIGGER_GROUP", "WORKER_GROUP", "ALIASES"]

TRIGGER_GROUP = "mkts.triggers"
WORKER_GROUP = "mkts.bgworkers"

# MarketStore's `module:` spellings for the bundled plugins.
ALIASES = {
    "ondiskagg.so": "mkts.plugins.ondiskagg",
    "stream.so": "mkts.plugins.stream",
}

_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_import_lock = threading.Lock()


def load_trigger(module: str, config: Mapping[str, Any] | None = None, *,
                 source: str | None = None, where: str | None = None,
                 paths: Sequence[str] = ()) -> Trigger:
    """Build the trigger `module` defines: ``NewTrigger(dict(config))``.

    Raises PluginError (naming the plugin) when the module cannot be found or imported, has
    no NewTrigger, the constructor raises, or the result has no ``fire`` method. A
    ConfigError from the constructor (a bad key of `config`) is re-raised at the key path
    `where` of `source` (`mkts.yml: triggers[0].config.batch_ms: ...`) when given. `paths`
    are directories searched for the module after the installed packages (mkts.yml's
    `plugin_paths`)."""
    obj = _build(module, config, TRIGGER_GROUP, "NewTrigger", "trigger", source, where, paths)
    if not callable(getattr(obj, "fire", None)):
        raise PluginError(f"trigger plugin {module!r}: NewTrigger returned {obj!r}, "
                          "which has no fire(key_path, records) method")
    return cast(Trigger, obj)


def load_worker(module: str, config: Mapping[str, Any] | None = None, *,
                source: str | None = None, where: str | None = None,
                paths: Sequence[str] = ()) -> BgWorker:
    """Build the background worker `module` defines: ``NewBgWorker(dict(config))``.

    Raises PluginError or ConfigError as load_trigger does; the result must have a ``run``
    method."""
    obj = _build(module, config, WORKER_GROUP, "NewBgWorker", "background worker", source,
                 where, paths)
    if not callable(getattr(obj, "run", None)):
        raise PluginError(f"background worker plugin {module!r}: NewBgWorker returned {obj!r}, "
                          "which has no run() method")
    return cast(BgWorker, obj)


def resolve(module: str, group: str, constructor: str, paths: Sequence[str] = ()
            ) -> Callable[[dict[str, Any]], Any]:
    """The constructor `module` names, in this order: a MarketStore alias (`ondiskagg.so`),
    an entry point of `group`, a dotted module path (searched in sys.path, then in `paths`,
    which stay on sys.path so the plugin can import its own modules later). Nothing is
    imported from the current directory implicitly: file paths are refused, and so are
    sys.path entries that mean the working directory (`''` under `python -c`, its absolute
    path under `python -m`) unless PYTHONPATH or `paths` name that directory."""
    kind = "trigger" if group == TRIGGER_GROUP else "background worker"
    if not isinstance(module, str) or not module:
        raise PluginError(f"{kind} plugin module must be a non-empty string, not {module!r}")
    target: Any
    if module in ALIASES:
        target = _import(ALIASES[module], module, kind)
    else:
        ep = entry_point(group, module)
        if ep is not None:
            try:
                target = ep.load()
            except Exception as exc:
                raise PluginError(
                    f"{kind} plugin {module!r}: entry point {ep.value!r} in group {group!r} "
                    f"could not be loaded: {type(exc).__name__}: {exc}"
                ) from exc
        elif _DOTTED.match(module):
            target = _import(module, module, kind, paths)
        else:
            raise PluginError(
                f"{kind} plugin {module!r} is neither an entry point in group {group!r} nor a "
                "dotted module path like 'mkts.plugins.ondiskagg' (file paths are not loaded)"
            )
    if isinstance(target, types.ModuleType):
        factory = getattr(target, constructor, None)
        if not callable(factory):
            raise PluginError(
                f"{kind} plugin {module!r}: module {target.__name__} has no {constructor}(config) "
                f"function; a {kind} module must define one (see plugins.base)"
            )
        return factory  # type: ignore[no-any-return]
    if callable(target):
        return target  # type: ignore[no-any-return]
    raise PluginError(f"{kind} plugin {module!r}: entry point gave {target!r}, "
                      f"neither a module nor a {constructor} callable")


def _build(module: str, config: Mapping[str, Any] | None, group: str, constructor: str,
           kind: str, source: str | None, where: str | None, paths: Sequence[str]) -> Any:
    if config is not None and not isinstance(config, Mapping):
        raise PluginError(f"{kind} plugin {module!r}: config must be a mapping, not "
                          f"{type(config).__name__}")
    factory = resolve(module, group, constructor, paths)
    try:
        return factory(dict(config or {}))
    except ConfigError as exc:  # a bad key of the plugin's config: name its key path
        if where is not None:
            raise exc.within(source or "config", where) from exc
        raise exc.within(f"{kind} plugin {module!r}", "config") from exc
    except PluginError as exc:
        if repr(module) in str(exc):
            raise
        raise PluginError(f"{kind} plugin {module!r}: {exc}") from exc
    except Exception as exc:
        raise PluginError(
            f"{kind} plugin {module!r}: {constructor}(config) failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _implicit_cwd_entries(paths: Sequence[str] = ()) -> list[str]:
    """The sys.path entries that stand for the working directory only because of how Python
    was started: '' (interactive, `python -c`) and the absolute working directory (`python
    -m`, which the `mkts` console script does not add). A directory PYTHONPATH or
    `plugin_paths` names is the user's choice and stays."""
    cwd = os.path.realpath(os.getcwd())
    chosen = {os.path.realpath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
              if p}
    chosen |= {os.path.realpath(p) for p in paths}
    return [p for p in sys.path
            if p == "" or (os.path.realpath(p) == cwd and cwd not in chosen)]


def _in_cwd(dotted: str) -> str | None:
    """The file or package of `dotted`'s top-level name in the working directory, if any."""
    top = dotted.split(".")[0]
    for name in (f"{top}.py", top):
        if os.path.exists(name):
            return name
    return None


def _import(dotted: str, module: str, kind: str, paths: Sequence[str] = ()
            ) -> types.ModuleType:
    with _import_lock:
        for p in paths:  # after the installed packages: a plugin never shadows one
            if p not in sys.path:
                sys.path.append(p)
        # Skip the entries that mean "the current directory", so a stray ondiskagg.py where
        # mkts happens to be started is never picked up; put them back afterwards.
        implicit = set(_implicit_cwd_entries(paths))
        hidden = [(i, p) for i, p in enumerate(sys.path) if p in implicit]
        if hidden:
            sys.path[:] = [p for p in sys.path if p not in implicit]
        try:
            return importlib.import_module(dotted)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (dotted == exc.name or dotted.startswith(exc.name + ".")):
                local = _in_cwd(dotted)
                why = (f"; {local} in the current directory is not imported (mkts loads no "
                       "code from where it happens to be started)") if local else ""
                searched = ", ".join(paths) if paths else "none configured"
                raise PluginError(
                    f"{kind} plugin {module!r}: module {dotted!r} was not found ({exc}){why}; "
                    "install the package that provides it, add the directory that holds it "
                    f"to `plugin_paths:` in mkts.yml (searched: {searched}) or to PYTHONPATH, "
                    "or fix `module:`"
                ) from exc
            raise PluginError(
                f"{kind} plugin {module!r}: importing {dotted!r} failed because a module it "
                f"needs is missing ({exc})"
            ) from exc
        except Exception as exc:
            raise PluginError(
                f"{kind} plugin {module!r}: importing {dotted!r} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        finally:
            for i, p in hidden:
                if p not in sys.path:
                    sys.path.insert(i, p)
