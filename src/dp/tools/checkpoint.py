"""Checkpoints: a `dp.nn.models.MLP` or `dp.nn.models.CNN`, and optionally its optimizer, in one ``.npz`` file.

    dp.checkpoint.save(model, "model.npz", optimizer=adam)
    model = dp.checkpoint.load("model.npz")
    model, adam = dp.checkpoint.load_with_optimizer("model.npz")
    dp.checkpoint.load_metadata("model.npz")          # {} unless save(..., metadata={...})

File layout, format version 2 (version 1, without the batch counts, is still read).
Every entry is a NumPy array and nothing is pickled (files are read with
``allow_pickle=False``), so loading a checkpoint never runs code from it:

    __dp_format__                    int64 scalar, the format version (2)
    __dp_model__                     str scalar, JSON of ``model.config`` (the architecture;
                                     a CNN's with "model": "CNN", an MLP's as it always was)
    weight_l1, avg_mean_bn1, ...     every entry of ``model.params`` under its own name,
                                     batch-norm moving averages and batch counts included
    __dp_optimizer__                 str scalar, JSON {"name": ..., "config": {...}}   (with an optimizer)
    __dp_optimizer__/{param}/{slot}  each entry of ``optimizer.state_dict()``          (with an optimizer)
    __dp_metadata__                  str scalar, JSON of a dict of the caller's (optional;
                                     the `dp` command records the data split there)

Saving is atomic: the file is written next to the target under a temporary
name, flushed to disk, then renamed over the target, so a crash or an error
leaves either the old checkpoint or the new one, never half of one.

Loading checks everything before returning: a truncated or corrupt file, an
unknown format version, an architecture that is not valid, parameter names,
shapes and dtypes that differ from what the architecture makes, non-finite
values, optimizer state that does not fit. Each is a `CheckpointError` (a
``ValueError``) that says what is wrong. ``save`` runs the same checks on what it
is about to write, so it never writes a checkpoint that ``load`` would refuse.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dp.checks import is_whole
from dp.nn.models import CNN, MLP, Classifier, cnn_weights
from dp.optim import Optimizer, make_optimizer
from dp.tools.files import write_atomically

FORMAT_VERSION = 2  # 2 added batch norm's batch counts (batches_{layer})
READABLE_VERSIONS = (1, 2)
# MLP settings added after format 1: a file without them was made with their defaults.
LATER_SETTINGS = {"init", "init_std"}
CNN_SIZES = ("image", "channels", "kernel_size", "hidden", "classes")  # the settings a CNN's size depends on
MODELS = {"MLP": MLP, "CNN": CNN}  # the architectures a checkpoint holds, by the name stored with a CNN's
# config ("model": "CNN"); a config without that name is an MLP's, as every file before CNNs was
RESERVED = "__dp_"  # prefix of the entries that are not parameters
FORMAT_KEY = "__dp_format__"
MODEL_KEY = "__dp_model__"
OPTIMIZER_KEY = "__dp_optimizer__"
METADATA_KEY = "__dp_metadata__"

PathLike = str | os.PathLike

# Limits on what a file may make the reader do, checked from the zip directory and the arrays'
# headers before any data is read or any model is built, so that a crafted file of a few
# kilobytes cannot take gigabytes of memory or minutes (the data of a file is read only once
# its shapes are known to be the model's, so these bound everything loading allocates):
MAX_PARAMETERS = 50_000_000  # weights: 400 MB in float64, 1.2 GB with Adam's two moments. dp trains
# on NumPy on a CPU, where a network that size is far beyond its use (the paper's MNIST network has
# 100,000); a file that claims more is a mistake or an attack. Raise it to load a larger model.
MAX_TEXT = 1_000_000  # characters of a JSON entry: an architecture is about 200, metadata a caller's dict
MAX_DEPTH = 100  # levels of nesting of a JSON entry: dp's own are 2 deep; deeper would exhaust Python's stack


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, truncated, of an unknown format, or does not
    describe a valid model (and optimizer); or a model cannot be saved as one."""


def save(
    model: Classifier, path: PathLike, optimizer: Optimizer | None = None, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write ``model`` (and ``optimizer``'s hyperparameters and state, and ``metadata``, a
    JSON-able dict, if given) to ``path``, atomically, in the layout of this module's docstring. ``path`` is used
    as given (no ``.npz`` is appended). `dp evaluate` reads the split from
    ``metadata={"data": {"name": "breast_cancer", "test_size": 0.2, "seed": S}}``
    (`dp train --save` writes it); without it, it asks for ``--seed``. An existing file at ``path`` is replaced
    and keeps its permissions; a new file gets the usual ones (0o666 minus the umask).

    Returns ``path`` as a `Path`. Raises ``TypeError`` when ``model`` is not a
    `dp.MLP` or `dp.CNN` or ``optimizer`` not a `dp.optim.Optimizer`; `CheckpointError`
    when ``load`` would refuse the result (e.g. NaN parameters); ``OSError`` when
    writing fails. On any error an existing file at ``path`` is left untouched
    and no temporary file remains.
    """
    if not isinstance(model, (MLP, CNN)):
        raise TypeError(f"save needs a dp.MLP or a dp.CNN (it stores the architecture), not {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a dp.optim.Optimizer or None, not {type(optimizer).__name__}")
    arrays = _encode(model, optimizer)
    if metadata is not None:
        arrays[METADATA_KEY] = _json_array(dict(metadata))
    _decode(arrays)  # the checks of load, on what is about to be written
    return write_atomically(path, lambda file: np.savez(file, allow_pickle=False, **arrays))


def load(path: PathLike) -> Classifier:
    """The model saved at ``path``: a new `dp.MLP` (or `dp.CNN`) of the saved architecture
    with the saved parameters, bit for bit, in training mode (call ``eval()`` for
    inference). Optimizer state in the file is checked but not returned; see
    `load_with_optimizer`.

    Raises ``FileNotFoundError`` (or another ``OSError``) when the file cannot be
    opened, `CheckpointError` for anything wrong with its content.
    """
    return load_with_optimizer(path)[0]


def load_with_optimizer(path: PathLike) -> tuple[Classifier, Optimizer | None]:
    """The model saved at ``path`` (as `load`) and its optimizer: a new `dp.optim.Optimizer`
    of the saved kind, hyperparameters and state, or ``None`` if none was saved.
    Errors as `load`."""
    return load_all(path)[:2]


def load_metadata(path: PathLike) -> dict[str, Any]:
    """The ``metadata`` dict saved with the checkpoint at ``path`` ({} if none), after
    the checks of `load`. Errors as `load`."""
    return load_all(path)[2]


def load_all(path: PathLike) -> tuple[Classifier, Optimizer | None, dict[str, Any]]:
    """Everything in the checkpoint at ``path``, read and checked once: the model (as
    `load`), the optimizer or ``None`` and the metadata ({} if none). Errors as `load`."""
    path = Path(path)
    with path.open("rb") as file, _archive(path, file) as archive:  # a missing path is FileNotFoundError
        return _decode(_directory(path, archive))


# ----- encoding -----


def _encode(model: Classifier, optimizer: Optimizer | None) -> dict[str, np.ndarray]:
    reserved = sorted(k for k in model.params if k.startswith(RESERVED))
    if reserved:
        raise CheckpointError(f"parameter names {reserved} start with {RESERVED!r}, which checkpoints reserve")
    config = model.config if isinstance(model, MLP) else {"model": "CNN", **model.config}
    arrays = {FORMAT_KEY: np.array(FORMAT_VERSION, dtype=np.int64), MODEL_KEY: _json_array(config)}
    arrays.update(model.params)
    if optimizer is not None:
        arrays[OPTIMIZER_KEY] = _json_array({"name": optimizer.name, "config": optimizer.config})
        for name, slots in optimizer.state_dict().items():
            for slot, value in slots.items():
                arrays[f"{OPTIMIZER_KEY}/{name}/{slot}"] = np.asarray(value)
    return arrays


def _json_array(value: Any) -> np.ndarray:
    """``value`` as JSON text in a 0-d string array; `CheckpointError` for a value nested
    too deeply to write (`_json_entry` refuses nesting deeper than `MAX_DEPTH` on reading)."""
    try:
        return np.array(json.dumps(value, default=_plain))
    except RecursionError:
        raise CheckpointError(f"cannot store a value nested more than {MAX_DEPTH} levels deep") from None


def _plain(value: Any) -> Any:
    """NumPy scalars in a config (np.float64, np.bool_) as the Python numbers JSON knows."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} {value!r} in a checkpoint's JSON")


# ----- reading and checking -----


@dataclass(frozen=True)
class _Stored:
    """An array in a checkpoint file as its .npy header declares it (shape and dtype): its
    data stays in the file until `read`, called once the declaration has been checked."""

    path: Path
    archive: zipfile.ZipFile
    member: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def read(self) -> np.ndarray:
        try:
            with self.archive.open(self.member) as file:
                return np.lib.format.read_array(file, allow_pickle=False)
        except Exception as error:
            raise _corrupt(self.path, error) from error


HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0}  # versions 2 and 3: the 2.0 reader
Entry = np.ndarray | _Stored  # save checks arrays in memory, load the entries of a file


def _value(entry: Entry) -> np.ndarray:
    """An entry's data: an array as it is, or a stored one read from its file now."""
    return entry.read() if isinstance(entry, _Stored) else entry


def _archive(path: Path, file: Any) -> zipfile.ZipFile:
    """The zip archive (an .npz file is one) in the open ``file``; its directory only is read."""
    if file.read(len(np.lib.format.MAGIC_PREFIX)) == np.lib.format.MAGIC_PREFIX:
        raise CheckpointError(f"{path} holds a single array (.npy), not a dp checkpoint (.npz)")
    file.seek(0)
    try:
        return zipfile.ZipFile(file)
    except Exception as error:
        raise _corrupt(path, error) from error


def _directory(path: Path, archive: zipfile.ZipFile) -> dict[str, _Stored]:
    """Every entry of the archive, by name, from the zip directory and each array's header:
    nothing else is decompressed. An entry that declares more data than it holds, or Python
    objects, is refused here."""
    entries = {}
    for member in archive.infolist():
        try:
            with archive.open(member) as file:
                header = HEADER_READERS.get(np.lib.format.read_magic(file), np.lib.format.read_array_header_2_0)
                shape, _, dtype = header(file)
        except Exception as error:
            raise _corrupt(path, error) from error
        name, entry = member.filename.removesuffix(".npy"), _Stored(path, archive, member, shape, dtype)
        if dtype.hasobject or entry.nbytes > member.file_size:
            what = "Python objects" if dtype.hasobject else f"{entry.nbytes:,} bytes but holds {member.file_size:,}"
            raise CheckpointError(f"{path} is not a dp checkpoint, or it is corrupt: entry {name!r} declares {what}")
        entries[name] = entry
    return entries


def _corrupt(path: Path, error: Exception) -> CheckpointError:
    """The error for a file that cannot be read as an .npz. zipfile and NumPy report damage in
    many ways (BadZipFile on a bad CRC or a missing directory, ValueError or EOFError on a
    short read, UnicodeDecodeError, ...): to the caller, all mean "this file is not a readable
    checkpoint". NumPy's words about loading with pickle, which a checkpoint never needs and an
    unknown file must never get, are left out."""
    if isinstance(error, CheckpointError):
        return error
    detail = type(error).__name__ if "pickle" in str(error) else f"{type(error).__name__}: {error}"
    return CheckpointError(f"{path} is not a dp checkpoint, or it is truncated or corrupt ({detail})")


def _decode(arrays: Mapping[str, Entry]) -> tuple[Classifier, Optimizer | None, dict[str, Any]]:
    """The model, optimizer (or None) and metadata ({} if none) described by a
    checkpoint's entries, after every check. An entry's data is read only once its
    declared shape and dtype are what the architecture makes, and the architecture is
    built only once its size is within `MAX_PARAMETERS`: a file cannot make the reader
    allocate more than the model it describes."""
    version = _format_version(arrays)
    _refuse_unknown_entries(arrays)
    model = _model(arrays)
    params = {k: v for k, v in arrays.items() if not k.startswith(RESERVED)}
    if version == 1:
        params = _with_batch_counts(model, params)
    _check_params(model, params)
    try:
        model.set_param({k: _value(v) for k, v in params.items()})  # and its checks of the values
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the parameters do not fit the architecture {model.config}: {error}") from error
    metadata = _json_entry(arrays, METADATA_KEY, "the metadata") if METADATA_KEY in arrays else {}
    return model, _optimizer(arrays, model), metadata


def _format_version(arrays: Mapping[str, Any]) -> int:
    """The checkpoint's format version, one that this dp reads."""
    version = arrays.get(FORMAT_KEY)
    if version is None:
        raise CheckpointError(f"not a dp checkpoint: no format version ({FORMAT_KEY!r} entry)")
    if not (version.shape == () and version.dtype.kind in "iu"):
        raise CheckpointError(
            f"not a dp checkpoint: the format version is not an integer (an array of {version.dtype}, "
            f"shape {version.shape})"
        )
    version = _value(version)
    if int(version) not in READABLE_VERSIONS:
        raise CheckpointError(
            f"checkpoint format version {int(version)} is not known to this version of dp, "
            f"which reads versions {', '.join(map(str, READABLE_VERSIONS))}"
        )
    return int(version)


def _refuse_unknown_entries(arrays: Mapping[str, Any]) -> None:
    known = (FORMAT_KEY, MODEL_KEY, OPTIMIZER_KEY, METADATA_KEY)
    unknown = sorted(
        k for k in arrays if k.startswith(RESERVED) and k not in known and not k.startswith(OPTIMIZER_KEY + "/")
    )
    if unknown:
        raise CheckpointError(f"the checkpoint has entries this version of dp does not know: {unknown}")


def _with_batch_counts(model: Classifier, params: dict[str, Any]) -> dict[str, Any]:
    """Format 1 did not count batch norm's training batches: a layer whose stored moving
    variance is not all zeros has trained (count 1, the least that explains it), one
    whose variance is all zeros has not (0), as format 1's readers judged it."""
    counts = {}
    for key in model.params:
        if key.startswith("batches_") and key not in params:
            name = "avg_variance_" + key[len("batches_") :]
            variance = params.get(name)  # of another shape: refused by _check_params, not read here
            trained = variance is not None and variance.shape == model.params[name].shape and _value(variance).any()
            counts[key] = np.full((1, 1), float(trained), dtype=model.dtype)
    return {**params, **counts}


def _model(arrays: Mapping[str, Any]) -> Classifier:
    """A fresh model (an MLP, or the kind the config names) of the architecture stored in
    the checkpoint (the model's class checks its settings)."""
    if MODEL_KEY not in arrays:
        raise CheckpointError(f"the checkpoint has no architecture ({MODEL_KEY!r} entry)")
    config = _json_entry(arrays, MODEL_KEY, "the architecture")
    kind = config.pop("model", "MLP") if isinstance(config, dict) else None
    if not isinstance(kind, str) or kind not in MODELS:
        raise CheckpointError(f"the checkpoint's architecture {config} is not one of dp's models {sorted(MODELS)}")
    _check_size(kind, config, sum(not k.startswith(RESERVED) for k in arrays))
    try:
        model = MODELS[kind](**config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the checkpoint's architecture {config} is not a valid {kind}: {error}") from error
    if not set(model.config) - LATER_SETTINGS <= set(config) <= set(model.config):
        raise CheckpointError(
            f"the checkpoint's architecture has the settings {sorted(config)}, a {kind} has {sorted(model.config)}"
        )
    return model


def _check_size(kind: str, config: dict, entries: int) -> None:
    """An architecture of whole-number sizes (others are the model's to refuse) is small
    enough to build: at most `MAX_PARAMETERS` weights, and (an MLP) no more layers than a
    file of ``entries`` parameter entries can hold (at least a weight and a bias or batch norm each).
    A CNN's file must state every setting its size depends on: one left out would be built
    with its default, beside the file's other sizes, before the settings are compared."""
    sizes: Any = config.get("sizes")
    if kind == "MLP" and _all_whole(sizes):
        _require_weights(sum(a * b for a, b in zip(sizes, sizes[1:])))
        _require_entries(len(sizes) - 1, entries)
    elif kind == "CNN":
        missing = sorted(set(CNN_SIZES) - set(config))
        if missing:
            raise CheckpointError(f"the checkpoint's CNN architecture {config} does not state {missing}")
        if all(_all_whole(config[key]) for key in ("image", "channels", "hidden")):
            _require_entries(len(config["channels"]) + len(config["hidden"]) + 1, entries)
            try:
                weights = cnn_weights(config)
            except (IndexError, TypeError, ValueError):  # settings a CNN refuses, with its own message
                return
            _require_weights(weights)


def _require_entries(layers: int, entries: int) -> None:
    """Refuse an architecture of more ``layers`` than a file of ``entries`` parameter entries can
    hold (each layer has at least two: a weight and a bias, or a weight and batch norm): a small
    file must not make the reader build a model of a million layers."""
    if 2 * layers > entries:
        raise CheckpointError(
            f"the checkpoint's architecture has {layers} layers, but the file holds only {entries} parameters"
        )


def _all_whole(sizes: Any) -> bool:
    return isinstance(sizes, list) and all(is_whole(size) and size > 0 for size in sizes)


def _require_weights(weights: int) -> None:
    if weights > MAX_PARAMETERS:
        raise CheckpointError(
            f"the checkpoint's architecture has {weights:,} weights, more than the {MAX_PARAMETERS:,} "
            "dp loads (dp.tools.checkpoint.MAX_PARAMETERS)"
        )


def _check_params(model: Classifier, params: Mapping[str, Entry]) -> None:
    """The stored parameters are exactly the architecture's: names, shapes, dtypes (their
    values, finite and a variance not negative, are `NeuralNode.set_param`'s checks)."""
    expected = model.params
    missing, extra = sorted(set(expected) - set(params)), sorted(set(params) - set(expected))
    problems = []
    if missing:
        problems.append(f"missing parameters {missing}")
    if extra:
        problems.append(f"parameters {extra} that the architecture does not have")
    for name in sorted(set(expected) & set(params)):
        value, like = params[name], expected[name]
        if value.shape != like.shape:
            problems.append(f"{name!r} has shape {value.shape}, the architecture needs {like.shape}")
        elif value.dtype != like.dtype:
            problems.append(f"{name!r} has dtype {value.dtype}, the architecture needs {like.dtype}")
    if problems:
        raise CheckpointError(f"the parameters do not fit the architecture {model.config}: " + "; ".join(problems))


def _optimizer(arrays: Mapping[str, Any], model: Classifier) -> Optimizer | None:
    """The optimizer stored with the model, with its state checked against the model's parameters."""
    prefix = OPTIMIZER_KEY + "/"
    entries = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
    if OPTIMIZER_KEY not in arrays:
        if entries:
            raise CheckpointError("the checkpoint has optimizer state but no optimizer")
        return None
    spec = _json_entry(arrays, OPTIMIZER_KEY, "the optimizer")
    if set(spec) != {"name", "config"} or not isinstance(spec["config"], dict):
        raise CheckpointError(f"the checkpoint's optimizer must be {{'name': ..., 'config': {{...}}}}, not {spec}")
    try:
        optimizer = make_optimizer(spec["name"], **spec["config"])
        optimizer.load_state_dict(_optimizer_state(entries, model))
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the checkpoint's optimizer is not valid: {error}") from error
    return optimizer


def _optimizer_state(entries: Mapping[str, Entry], model: Classifier) -> dict[str, dict[str, Any]]:
    """``{param: {slot: value}}`` from the entries ``{param}/{slot}``, each for a parameter
    of the model and of its shape (a ``step`` count: a single number), checked before it is read."""
    state: dict[str, dict[str, Any]] = {}
    for key, value in entries.items():
        name, _, slot = key.rpartition("/")  # slots never contain "/", parameter names might
        like = model.params.get(name)
        if like is None:
            raise CheckpointError(f"the checkpoint has optimizer state for {name!r}, which is not a parameter")
        shape = () if slot == "step" else like.shape
        if value.shape != shape:
            raise CheckpointError(f"the optimizer's {slot!r} for {name!r} has shape {value.shape}, it must be {shape}")
        state.setdefault(name, {})[slot] = _value(value)
    return state


def _json_entry(arrays: Mapping[str, Entry], key: str, what: str) -> dict:
    """The JSON object in the entry ``key``: a string of at most `MAX_TEXT` characters,
    nested at most `MAX_DEPTH` levels deep, checked before it is read and decoded."""
    value = arrays[key]
    if not (value.shape == () and value.dtype.kind == "U"):
        raise CheckpointError(f"{what} ({key!r}) must be a JSON string")
    if value.dtype.itemsize // 4 > MAX_TEXT:  # NumPy stores text in UTF-32: 4 bytes a character
        raise CheckpointError(f"{what} ({key!r}) is longer than the {MAX_TEXT:,} characters a checkpoint may hold")
    try:
        decoded = json.loads(str(_value(value)))
    except RecursionError:
        decoded = None
    except ValueError as error:
        raise CheckpointError(f"{what} ({key!r}) is not valid JSON: {error}") from error
    if decoded is None or _depth(decoded) > MAX_DEPTH:
        raise CheckpointError(f"{what} ({key!r}) is nested more than {MAX_DEPTH} levels deep")
    if not isinstance(decoded, dict):
        raise CheckpointError(f"{what} ({key!r}) must be a JSON object, not {decoded!r}")
    return decoded


def _depth(value: Any) -> int:
    """How deeply lists and dicts nest in a decoded JSON value (a number or string: 0),
    measured without recursion, so that any depth is measured."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, depth + 1)
            stack.extend((child, depth + 1) for child in children)
    return deepest
