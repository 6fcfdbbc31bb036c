"""A restricted unpickler for dataset metadata (GEO-Bench): builds plain data, never runs foreign code.

GEO-Bench stores per-sample metadata and ``task_specs.pkl`` as pickles of its own classes (band
descriptions, label types), dates, affine transforms and CRS objects. Unpickling them with ``pickle``
would import geobench and run whatever a (possibly tampered) file names. Here:

- plain containers, numbers, strings, bytes, ``datetime`` values and numpy arrays are rebuilt as such
  (numpy's own reconstruction functions are the only callables allowed);
- instances of classes from an allow-listed set of modules (``geobench``, its predecessor ``ccb``,
  ``affine``, ``rasterio``, ``pathlib``) become :class:`PickledRecord` stand-ins that only remember
  the class name, constructor arguments and state; their code is never imported or called;
- any other global (``os.system``, ``builtins.eval``, ``subprocess.Popen`` ...) is refused with
  :class:`geodiv.errors.UnsafeCheckpointError` before anything is called.

:func:`to_plain` then turns stand-ins into dicts (``{"__class__": "geobench.dataset.Sentinel2", ...}``).
"""

from __future__ import annotations

import _compat_pickle
import ast
import copyreg
import datetime
import io
import pickle
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from geodiv.errors import DataError, UnsafeCheckpointError

#: Modules whose classes may appear as inert records (never imported).
RECORD_MODULES: tuple[str, ...] = ("geobench", "ccb", "affine", "rasterio", "pathlib")

# Callables that only construct values of their own type from plain arguments.
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("builtins", "slice"): slice,
    ("collections", "OrderedDict"): OrderedDict,
    ("datetime", "date"): datetime.date,
    ("datetime", "datetime"): datetime.datetime,
    ("datetime", "time"): datetime.time,
    ("datetime", "timedelta"): datetime.timedelta,
    ("datetime", "timezone"): datetime.timezone,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _SAFE_GLOBALS[(_mod, "_reconstruct")] = np.ndarray.__reduce__(np.zeros(0))[0]
    _SAFE_GLOBALS[(_mod, "scalar")] = np.float64(0).__reduce__()[0]
for _mod in ("numpy.core.numeric", "numpy._core.numeric"):
    try:
        from numpy._core.numeric import _frombuffer  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.numeric import _frombuffer
    _SAFE_GLOBALS[(_mod, "_frombuffer")] = _frombuffer
for _name in ("dtype", "Float64DType", "Float32DType", "Int16DType", "UInt16DType", "Int64DType", "UInt8DType"):
    _SAFE_GLOBALS[("numpy.dtypes", _name)] = np.dtype


class PickledRecord:
    """An inert stand-in for an instance of a pickled class: class path, arguments and state only."""

    _class_path = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> PickledRecord:
        obj = object.__new__(cls)
        obj.__dict__["_args"] = args
        obj.__dict__["_kwargs"] = kwargs
        obj.__dict__["_state"] = {}
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # called by REDUCE (cls(*args)); nothing to run
        pass

    def __setstate__(self, state: Any) -> None:
        # (dict, slots) pairs and non-dict states are kept as given.
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[1], dict):
            merged = dict(state[0] or {})
            merged.update(state[1])
            state = merged
        self.__dict__["_state"] = state

    def __getattr__(self, name: str) -> Any:
        state = self.__dict__.get("_state")
        if isinstance(state, dict) and name in state:
            return state[name]
        raise AttributeError(f"{self._class_path} record has no field {name!r}")

    @property
    def type_path(self) -> str:
        return self._class_path

    @property
    def type_name(self) -> str:
        return self._class_path.rsplit(".", 1)[-1]

    def __repr__(self) -> str:
        return f"PickledRecord({self._class_path}, args={self._args!r}, state={self._state!r})"


_RECORD_TYPES: dict[str, type[PickledRecord]] = {}


def _record_type(module: str, name: str) -> type[PickledRecord]:
    path = f"{module}.{name}"
    if path not in _RECORD_TYPES:
        _RECORD_TYPES[path] = type(name, (PickledRecord,), {"_class_path": path})
    return _RECORD_TYPES[path]


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafeCheckpointError(f"pickle asks for codec {encoding!r}; only latin1 byte strings are allowed")
    return text.encode("latin1")


def _reconstructor(cls: Any, base: Any, state: Any) -> Any:
    # copyreg._reconstructor for protocol 0/1 pickles: the class was resolved through find_class already.
    if isinstance(cls, type) and issubclass(cls, PickledRecord):
        return cls()
    if base is object:
        return cls.__new__(cls)
    return base.__new__(cls, state)


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` allows only value constructors and inert records."""

    def __init__(self, file: io.BytesIO, *, what: str, record_modules: Sequence[str] = RECORD_MODULES) -> None:
        super().__init__(file)
        self.what = what
        self.record_modules = tuple(record_modules)

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names in protocol 0-2 pickles, mapped as pickle's own find_class does; the mapped name
        # still has to pass the allow-list below.
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) == ("_codecs", "encode"):  # how protocol 0-2 pickles store bytes
            return _latin1_encode
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if (module, name) == ("copyreg", "_reconstructor"):
            return _reconstructor
        if (module, name) == ("copyreg", "__newobj__"):
            return copyreg.__newobj__
        root = module.split(".", 1)[0]
        if root in self.record_modules and "." not in name and not name.startswith("_"):
            return _record_type(module, name)
        raise UnsafeCheckpointError(
            f"{self.what}: the pickle asks for {module}.{name}, which is not plain data; geodiv refuses to "
            "unpickle it (it could run arbitrary code). Re-create the file from a trusted source."
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeCheckpointError(f"{self.what}: the pickle uses persistent ids, which geodiv refuses")


def safe_loads(data: bytes, *, what: str, record_modules: Sequence[str] = RECORD_MODULES) -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`; ``what`` names the file/field in errors."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), what=what, record_modules=record_modules).load()
    except UnsafeCheckpointError:
        raise
    except Exception as err:  # truncated or corrupt pickles raise many exception types
        raise DataError(f"{what}: metadata pickle is corrupt ({type(err).__name__}: {err})") from None


def pickle_bytes_from_attr(value: Any, *, what: str) -> bytes:
    """GEO-Bench writes ``str(pickle.dumps(obj))`` into an HDF5 attribute: the repr of a bytes object.

    ``ast.literal_eval`` turns that repr back into bytes without evaluating code; raw bytes are accepted too.
    """
    if isinstance(value, np.ndarray) and value.dtype.kind in "SV":
        value = value.tobytes()
    if isinstance(value, (bytes, np.bytes_)):
        text = bytes(value)
        if not (text.startswith(b"b'") or text.startswith(b'b"')):
            return text
        value = text.decode("latin-1")
    if isinstance(value, str):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise DataError(f"{what}: the 'pickle' attribute is not a bytes literal") from None
        if isinstance(parsed, bytes):
            return parsed
    raise DataError(f"{what}: the 'pickle' attribute holds {type(value).__name__}, expected pickled bytes")


def to_plain(obj: Any) -> Any:
    """Records -> dicts with a ``__class__`` key (and ``__args__`` when constructed with arguments);
    containers converted recursively; arrays, numbers, strings and dates kept."""
    if isinstance(obj, PickledRecord):
        out: dict[str, Any] = {"__class__": obj.type_path}
        if obj._args:
            out["__args__"] = [to_plain(a) for a in obj._args]
        state = obj._state
        if isinstance(state, dict):
            out.update({str(k): to_plain(v) for k, v in state.items()})
        elif state:
            out["__state__"] = to_plain(state)
        return out
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(v) for v in obj)
    return obj
