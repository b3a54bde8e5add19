"""Checkpoints: a `dp.nn.models.MLP`, and optionally its optimizer, in one ``.npz`` file.

    dp.checkpoint.save(model, "model.npz", optimizer=adam)
    model = dp.checkpoint.load("model.npz")
    model, adam = dp.checkpoint.load_with_optimizer("model.npz")
    dp.checkpoint.load_metadata("model.npz")          # {} unless save(..., metadata={...})

File layout, format version 2 (version 1, without the batch counts, is still read).
Every entry is a NumPy array and nothing is pickled (files are read with
``allow_pickle=False``), so loading a checkpoint never runs code from it:

    __dp_format__                    int64 scalar, the format version (2)
    __dp_model__                     str scalar, JSON of ``model.config`` (the architecture)
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

import contextlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dp.nn.models import MLP
from dp.optim import Optimizer, make_optimizer

FORMAT_VERSION = 2  # 2 added batch norm's batch counts (batches_{layer})
READABLE_VERSIONS = (1, 2)
# MLP settings added after format 1: a file without them was made with their defaults.
LATER_SETTINGS = {"init", "init_std"}
RESERVED = "__dp_"  # prefix of the entries that are not parameters
FORMAT_KEY = "__dp_format__"
MODEL_KEY = "__dp_model__"
OPTIMIZER_KEY = "__dp_optimizer__"
METADATA_KEY = "__dp_metadata__"

PathLike = str | os.PathLike


class CheckpointError(ValueError):
    """A checkpoint file is corrupt, truncated, of an unknown format, or does not
    describe a valid model (and optimizer); or a model cannot be saved as one."""


def save(
    model: MLP, path: PathLike, optimizer: Optimizer | None = None, metadata: Mapping[str, Any] | None = None
) -> Path:
    """Write ``model`` (and ``optimizer``'s hyperparameters and state, and ``metadata``, a
    JSON-able dict, if given) to ``path``, atomically, in the layout of this module's docstring. ``path`` is used
    as given (no ``.npz`` is appended). `dp evaluate` reads the split from
    ``metadata={"data": {"name": "breast_cancer", "test_size": 0.2, "seed": S}}``
    (`dp train --save` writes it); without it, it asks for ``--seed``. An existing file at ``path`` is replaced
    and keeps its permissions; a new file gets the usual ones (0o666 minus the umask).

    Returns ``path`` as a `Path`. Raises ``TypeError`` when ``model`` is not a
    `dp.nn.models.MLP` or ``optimizer`` not a `dp.optim.Optimizer`; `CheckpointError`
    when ``load`` would refuse the result (e.g. NaN parameters); ``OSError`` when
    writing fails. On any error an existing file at ``path`` is left untouched
    and no temporary file remains.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"save needs a dp.nn.models.MLP (it stores the architecture), not {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a dp.optim.Optimizer or None, not {type(optimizer).__name__}")
    arrays = _encode(model, optimizer)
    if metadata is not None:
        arrays[METADATA_KEY] = _json_array(dict(metadata))
    _decode(arrays)  # the checks of load, on what is about to be written
    path = Path(path)
    _write_atomically(path, arrays)
    return path


def load(path: PathLike) -> MLP:
    """The model saved at ``path``: a new `dp.nn.models.MLP` of the saved architecture
    with the saved parameters, bit for bit, in training mode (call ``eval()`` for
    inference). Optimizer state in the file is checked but not returned; see
    `load_with_optimizer`.

    Raises ``FileNotFoundError`` (or another ``OSError``) when the file cannot be
    opened, `CheckpointError` for anything wrong with its content.
    """
    return load_with_optimizer(path)[0]


def load_with_optimizer(path: PathLike) -> tuple[MLP, Optimizer | None]:
    """The model saved at ``path`` (as `load`) and its optimizer: a new `dp.optim.Optimizer`
    of the saved kind, hyperparameters and state, or ``None`` if none was saved.
    Errors as `load`."""
    return load_all(path)[:2]


def load_metadata(path: PathLike) -> dict[str, Any]:
    """The ``metadata`` dict saved with the checkpoint at ``path`` ({} if none), after
    the checks of `load`. Errors as `load`."""
    return load_all(path)[2]


def load_all(path: PathLike) -> tuple[MLP, Optimizer | None, dict[str, Any]]:
    """Everything in the checkpoint at ``path``, read and checked once: the model (as
    `load`), the optimizer or ``None`` and the metadata ({} if none). Errors as `load`."""
    return _decode(_read(Path(path)))


# ----- encoding -----


def _encode(model: MLP, optimizer: Optimizer | None) -> dict[str, np.ndarray]:
    reserved = sorted(k for k in model.params if k.startswith(RESERVED))
    if reserved:
        raise CheckpointError(f"parameter names {reserved} start with {RESERVED!r}, which checkpoints reserve")
    arrays = {FORMAT_KEY: np.array(FORMAT_VERSION, dtype=np.int64), MODEL_KEY: _json_array(model.config)}
    arrays.update(model.params)
    if optimizer is not None:
        arrays[OPTIMIZER_KEY] = _json_array({"name": optimizer.name, "config": optimizer.config})
        for name, slots in optimizer.state_dict().items():
            for slot, value in slots.items():
                arrays[f"{OPTIMIZER_KEY}/{name}/{slot}"] = np.asarray(value)
    return arrays


def _json_array(value: Any) -> np.ndarray:
    return np.array(json.dumps(value, default=_plain))


def _plain(value: Any) -> Any:
    """NumPy scalars in a config (np.float64, np.bool_) as the Python numbers JSON knows."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} {value!r} in a checkpoint's JSON")


def _write_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write to a temporary file in the target's directory (so the rename stays on one
    file system, where it is atomic), flush it to disk, then rename it over the target."""
    mode = _mode_for(path)
    try:
        file = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    except OSError as error:
        raise _about(path, error) from error
    try:
        with file:
            np.savez(file, allow_pickle=False, **arrays)
            file.flush()
            os.fsync(file.fileno())  # the data is on disk before the name points at it
        os.chmod(file.name, mode)
        os.replace(file.name, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(file.name)
        if isinstance(error, OSError):
            raise _about(path, error) from error
        raise
    _sync_directory(path.parent)


def _about(path: Path, error: OSError) -> OSError:
    """``error`` (same class and errno) told about the checkpoint the user named, not
    the temporary file it was being written to."""
    message = f"cannot write {path}: {error.strerror or error}"
    return type(error)(message) if error.errno is None else type(error)(error.errno, message)


def _mode_for(path: Path) -> int:
    """The permissions the file should end with: an existing target's, else the usual
    ones for a new file (temporary files are created readable by their owner only)."""
    with contextlib.suppress(OSError):
        return path.stat().st_mode & 0o777
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask. Linux reports it in /proc; elsewhere the only way is to set
    it and put it back, which a thread creating a file in between would see."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    umask = os.umask(0o077)  # briefly the strictest mask, not 0: a racing file is private, not open
    os.umask(umask)
    return umask


def _sync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); best effort where directories can't be synced."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ----- reading and checking -----


def _read(path: Path) -> dict[str, Any]:
    """Every entry of the .npz file at ``path``, read eagerly (so that a truncated or
    corrupt member fails here, with the file still open)."""
    with path.open("rb") as file:  # a missing path is FileNotFoundError, not a CheckpointError
        try:
            content = np.load(file, allow_pickle=False)
            if not isinstance(content, np.lib.npyio.NpzFile):
                raise CheckpointError(f"{path} holds a single array (.npy), not a dp checkpoint (.npz)")
            with content:
                return {name: content[name] for name in content.files}
        except CheckpointError:
            raise
        except Exception as error:
            # np.load and zipfile report damage in many ways (BadZipFile on a bad CRC or a
            # missing directory, ValueError or EOFError on a short read, UnicodeDecodeError,
            # MemoryError for a header claiming a huge array, ...): to the caller, all mean
            # "this file is not a readable checkpoint". For a file that is not an .npz, NumPy's
            # own words suggest loading it with pickle, which a checkpoint never needs and an
            # unknown file must never get: those are left out.
            detail = type(error).__name__ if "pickle" in str(error) else f"{type(error).__name__}: {error}"
            raise CheckpointError(f"{path} is not a dp checkpoint, or it is truncated or corrupt ({detail})") from error


def _decode(arrays: Mapping[str, Any]) -> tuple[MLP, Optimizer | None, dict[str, Any]]:
    """The model, optimizer (or None) and metadata ({} if none) described by a
    checkpoint's entries, after every check."""
    version = _format_version(arrays)
    _refuse_unknown_entries(arrays)
    model = _model(arrays)
    params = {k: v for k, v in arrays.items() if not k.startswith(RESERVED)}
    if version == 1:
        params = _with_batch_counts(model, params)
    _check_params(model, params)
    try:
        model.set_param(params)  # and its checks of the values
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the parameters do not fit the architecture {model.config}: {error}") from error
    metadata = _json_entry(arrays, METADATA_KEY, "the metadata") if METADATA_KEY in arrays else {}
    return model, _optimizer(arrays, model), metadata


def _format_version(arrays: Mapping[str, Any]) -> int:
    """The checkpoint's format version, one that this dp reads."""
    version = arrays.get(FORMAT_KEY)
    if version is None:
        raise CheckpointError(f"not a dp checkpoint: no format version ({FORMAT_KEY!r} entry)")
    if not (isinstance(version, np.ndarray) and version.shape == () and version.dtype.kind in "iu"):
        raise CheckpointError(f"not a dp checkpoint: the format version is not an integer ({version!r})")
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


def _with_batch_counts(model: MLP, params: dict[str, Any]) -> dict[str, Any]:
    """Format 1 did not count batch norm's training batches: a layer whose stored moving
    variance is not all zeros has trained (count 1, the least that explains it), one
    whose variance is all zeros has not (0), as format 1's readers judged it."""
    counts = {}
    for key in model.params:
        if key.startswith("batches_") and key not in params:
            variance = np.asarray(params.get("avg_variance_" + key[len("batches_") :], 0.0))
            counts[key] = np.full((1, 1), float(variance.any()), dtype=model.dtype)
    return {**params, **counts}


def _model(arrays: Mapping[str, Any]) -> MLP:
    """A fresh MLP of the architecture stored in the checkpoint (MLP checks its settings)."""
    if MODEL_KEY not in arrays:
        raise CheckpointError(f"the checkpoint has no architecture ({MODEL_KEY!r} entry)")
    config = _json_entry(arrays, MODEL_KEY, "the architecture")
    try:
        model = MLP(**config)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"the checkpoint's architecture {config} is not a valid MLP: {error}") from error
    if not set(model.config) - LATER_SETTINGS <= set(config) <= set(model.config):
        raise CheckpointError(
            f"the checkpoint's architecture has the settings {sorted(config)}, an MLP has {sorted(model.config)}"
        )
    return model


def _check_params(model: MLP, params: Mapping[str, Any]) -> None:
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
        if not isinstance(value, np.ndarray):
            problems.append(f"{name!r} is not an array")
        elif value.shape != like.shape:
            problems.append(f"{name!r} has shape {value.shape}, the architecture needs {like.shape}")
        elif value.dtype != like.dtype:
            problems.append(f"{name!r} has dtype {value.dtype}, the architecture needs {like.dtype}")
    if problems:
        raise CheckpointError(f"the parameters do not fit the architecture {model.config}: " + "; ".join(problems))


def _optimizer(arrays: Mapping[str, Any], model: MLP) -> Optimizer | None:
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


def _optimizer_state(entries: Mapping[str, Any], model: MLP) -> dict[str, dict[str, Any]]:
    """``{param: {slot: value}}`` from the entries ``{param}/{slot}``, each for a parameter
    of the model and, for an array slot, of its shape."""
    state: dict[str, dict[str, Any]] = {}
    for key, value in entries.items():
        name, _, slot = key.rpartition("/")  # slots never contain "/", parameter names might
        like = model.params.get(name)
        if like is None:
            raise CheckpointError(f"the checkpoint has optimizer state for {name!r}, which is not a parameter")
        if slot != "step" and getattr(value, "shape", None) != like.shape:
            raise CheckpointError(
                f"the optimizer's {slot!r} for {name!r} has shape {getattr(value, 'shape', None)}, "
                f"the parameter has {like.shape}"
            )
        state.setdefault(name, {})[slot] = value
    return state


def _json_entry(arrays: Mapping[str, Any], key: str, what: str) -> dict:
    value = arrays[key]
    if not (isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind == "U"):
        raise CheckpointError(f"{what} ({key!r}) must be a JSON string")
    try:
        decoded = json.loads(str(value))
    except ValueError as error:
        raise CheckpointError(f"{what} ({key!r}) is not valid JSON: {error}") from error
    if not isinstance(decoded, dict):
        raise CheckpointError(f"{what} ({key!r}) must be a JSON object, not {decoded!r}")
    return decoded
