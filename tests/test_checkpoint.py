"""Checkpoints: exact round trips (model and optimizer), atomic writes, and refusal of
every kind of damaged or mismatched file with a CheckpointError."""

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dp
from dp.optim import SGD, Adam, Momentum
from dp.tools import checkpoint
from dp.tools.checkpoint import CheckpointError, load, load_with_optimizer, save


def train(model, optimizer=None, steps=4, seed=0):
    """A few optimizer steps on random data, so weights and moving averages are non-trivial."""
    optimizer = optimizer or SGD(lr=0.1)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        x = rng.standard_normal((16, model.sizes[0]))
        y = rng.integers(0, model.sizes[-1] if model.sizes[-1] > 1 else 2, 16)
        optimizer.step(model.params, model.loss(x, y).grad(1))
    return model


def assert_same_params(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes(), k


def entries(path):
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def rewrite(path, **changes):
    """Rewrite a checkpoint with some entries replaced (None removes one), bypassing save's checks."""
    arrays = entries(path)
    for k, v in changes.items():
        if v is None:
            del arrays[k]
        else:
            arrays[k] = v
    np.savez(path, **arrays)


@pytest.fixture
def model():
    return train(dp.MLP(seed=0))


@pytest.fixture
def saved(model, tmp_path):
    return save(model, tmp_path / "model.npz")


# ----- round trips -----


def test_a_loaded_model_has_the_same_params_and_predictions_bit_for_bit(model, saved):
    assert model.params["avg_variance_bn1"].any() and model.params["avg_mean_bn2"].any()  # trained state
    loaded = load(saved)
    assert type(loaded) is dp.MLP and loaded.config == model.config
    assert_same_params(loaded.params, model.params)
    x = np.random.default_rng(1).standard_normal((50, 30))
    assert np.array_equal(loaded.eval().predict_proba(x), model.eval().predict_proba(x))


architectures = st.fixed_dictionaries(
    {
        "sizes": st.lists(st.integers(1, 5), min_size=2, max_size=4).map(tuple),
        "batch_norm": st.booleans(),
        "activation": st.sampled_from(["tanh", "relu", "sigmoid"]),
        "dtype": st.sampled_from(["float32", "float64"]),
        "momentum": st.one_of(st.none(), st.floats(0.01, 1.0)),
        "unbiased_average": st.booleans(),
        "renorm": st.booleans(),
        "rmax": st.floats(1.0, 5.0),
        "dmax": st.floats(0.0, 5.0),
        "renorm_warmup": st.integers(0, 5),
    }
)


@settings(max_examples=30)
@given(config=architectures, seed=st.integers(0, 2**16))
def test_every_architecture_round_trips_exactly(config, seed):
    model = train(dp.MLP(**config, seed=seed), steps=2, seed=seed)
    with tempfile.TemporaryDirectory() as directory:
        loaded = load(save(model, Path(directory) / "m.npz"))
    assert loaded.config == model.config
    assert_same_params(loaded.params, model.params)
    x = np.random.default_rng(seed).standard_normal((7, config["sizes"][0]))
    assert np.array_equal(loaded.eval().predict_proba(x), model.eval().predict_proba(x))


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.05), lambda: Momentum(lr=0.05, beta=0.8), lambda: Adam(lr=0.01)])
def test_training_resumed_from_a_checkpoint_continues_identically(make, tmp_path):
    model, optimizer = dp.MLP(sizes=(30, 8, 4, 1), seed=3), make()
    train(model, optimizer, steps=3)
    save(model, tmp_path / "c.npz", optimizer=optimizer)
    resumed, resumed_optimizer = load_with_optimizer(tmp_path / "c.npz")
    assert type(resumed_optimizer) is type(optimizer) and resumed_optimizer.config == optimizer.config
    train(model, optimizer, steps=3, seed=9)
    train(resumed, resumed_optimizer, steps=3, seed=9)
    assert_same_params(resumed.params, model.params)


@pytest.mark.parametrize(
    "make",
    [
        lambda: dp.MLP(sizes=(30, 8, 4, 1), seed=3, renorm=True, rmax=2.0, dmax=1.5, renorm_warmup=5, momentum=None),
        lambda: dp.CNN(image=(1, 8, 8), channels=(3,), hidden=(5,), renorm=True, renorm_warmup=4, momentum=None),
    ],
    ids=["mlp", "cnn"],
)
def test_renorm_and_momentum_none_round_trip_and_training_resumes_identically(make, tmp_path):
    """The warmup counts batches_{name}, saved with the model: resumed, it ramps on from there."""
    model, optimizer = make(), Adam(lr=0.01)

    def three_steps(model, optimizer, seed):
        if isinstance(model, dp.MLP):
            return train(model, optimizer, steps=3, seed=seed)
        return train_cnn(model, optimizer, steps=3)

    three_steps(model, optimizer, 2)
    resumed, resumed_optimizer = load_with_optimizer(save(model, tmp_path / "r.npz", optimizer=optimizer))
    assert resumed.config == model.config and resumed.config["renorm"] and resumed.config["momentum"] is None
    assert_same_params(resumed.params, model.params)
    three_steps(model, optimizer, 9)
    three_steps(resumed, resumed_optimizer, 9)
    assert_same_params(resumed.params, model.params)


def test_a_file_from_before_renorm_and_momentum_none_loads_as_plain_batch_norm(saved):
    """Files written before these settings hold no renorm entries: their config is a plain model's."""
    stored = json.loads(str(entries(saved)["__dp_model__"]))
    assert not {"renorm", "rmax", "dmax", "renorm_warmup"} & set(stored) and stored["momentum"] == 0.1
    loaded = load(saved)
    assert [(norm.renorm, norm.momentum) for _, norm in loaded.hidden] == [(False, 0.1)] * 2


def test_a_renorm_config_without_all_of_its_settings_is_refused(saved):
    rewrite(saved, __dp_model__=np.array(json.dumps({**dp.MLP().config, "renorm": True, "rmax": 2.0})))
    with pytest.raises(CheckpointError, match="has the settings"):
        load(saved)


def test_without_a_saved_optimizer_load_with_optimizer_gives_none(saved):
    model, optimizer = load_with_optimizer(saved)
    assert isinstance(model, dp.MLP) and optimizer is None


def test_load_returns_only_the_model_when_an_optimizer_was_saved(model, tmp_path):
    path = save(model, tmp_path / "c.npz", optimizer=Adam())
    assert isinstance(load(path), dp.MLP)


def test_the_file_holds_every_param_under_its_name_the_config_as_json_and_the_version(model, saved):
    stored = entries(saved)
    assert int(stored["__dp_format__"]) == checkpoint.FORMAT_VERSION == 2
    assert json.loads(str(stored["__dp_model__"])) == {**model.config, "sizes": list(model.sizes)}
    assert set(stored) == set(model.params) | {"__dp_format__", "__dp_model__"}
    for k, v in model.params.items():
        assert stored[k].tobytes() == v.tobytes()


def test_the_optimizer_is_stored_as_json_and_one_entry_per_state_slot(model, tmp_path):
    adam = Adam(lr=0.01)
    train(model, adam, steps=1)
    stored = entries(save(model, tmp_path / "c.npz", optimizer=adam))
    assert json.loads(str(stored["__dp_optimizer__"])) == {"name": "adam", "config": adam.config}
    assert int(stored["__dp_optimizer__/weight_l1/step"]) == 1
    assert stored["__dp_optimizer__/gamma_bn1/m"].tobytes() == adam.state_dict()["gamma_bn1"]["m"].tobytes()


def test_numpy_scalars_in_the_config_are_stored_as_plain_json(tmp_path):
    model = dp.MLP(sizes=(3, 2, 1), momentum=np.float64(0.2), unbiased_average=np.bool_(True))
    loaded = load(save(train(model), tmp_path / "m.npz"))
    assert loaded.config["momentum"] == 0.2 and loaded.config["unbiased_average"] is True


def test_the_path_is_used_as_given(model, tmp_path):
    path = save(model, str(tmp_path / "no_suffix"))
    assert path == tmp_path / "no_suffix" and path.is_file()
    assert load(str(path)).config == model.config


# ----- atomic writes -----


def files_in(directory):
    return sorted(p.name for p in directory.iterdir())


def test_a_save_that_fails_midway_leaves_the_old_file_bit_identical_and_no_temporary(saved, monkeypatch):
    old = saved.read_bytes()

    def fail_midway(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        save(train(dp.MLP(seed=5)), saved)
    assert saved.read_bytes() == old
    assert files_in(saved.parent) == ["model.npz"]


def test_a_failing_rename_leaves_the_old_file_and_no_temporary(saved, monkeypatch):
    old = saved.read_bytes()

    def refuse(source, target):
        raise PermissionError("read-only target")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        save(train(dp.MLP(seed=5)), saved)
    assert saved.read_bytes() == old and files_in(saved.parent) == ["model.npz"]


def test_the_data_is_synced_before_it_is_renamed_over_the_target(model, tmp_path, monkeypatch):
    events, real_fsync, real_replace = [], os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", Path(a).parent)), real_replace(a, b))[1])
    save(model, tmp_path / "m.npz")
    assert events[0] == "fsync" and events[1] == ("replace", tmp_path)  # written in the target's directory


def test_a_save_refused_by_the_checks_writes_nothing(model, saved):
    old = saved.read_bytes()
    model.params["gamma_bn1"] = np.full_like(model.params["gamma_bn1"], np.nan)
    with pytest.raises(CheckpointError, match="'gamma_bn1' has NaN or inf"):
        save(model, saved)
    assert saved.read_bytes() == old and files_in(saved.parent) == ["model.npz"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_new_file_gets_the_usual_permissions_and_a_replaced_one_keeps_its_own(model, tmp_path):
    umask = os.umask(0o022)
    try:
        assert (save(model, tmp_path / "new.npz").stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(umask)
    existing = tmp_path / "new.npz"
    existing.chmod(0o640)
    assert (save(model, existing).stat().st_mode & 0o777) == 0o640


def test_only_an_mlp_or_a_cnn_and_an_optimizer_can_be_saved(model, tmp_path):
    with pytest.raises(TypeError, match=r"save needs a dp.MLP or a dp.CNN .*, not NeuralNode"):
        save(dp.NeuralNode(), tmp_path / "x.npz")
    with pytest.raises(TypeError, match="dp.optim.Optimizer"):
        save(model, tmp_path / "x.npz", optimizer="adam")
    assert files_in(tmp_path) == []


# ----- damaged files -----


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nothing.npz")


def test_a_file_truncated_to_half_is_refused(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load(saved)


@pytest.mark.parametrize("cut", [0, 1, 10, 100])
def test_a_file_cut_near_its_end_or_empty_is_refused(saved, cut):
    data = saved.read_bytes()
    saved.write_bytes(data[:cut] if cut < 50 else data[:-cut])
    with pytest.raises(CheckpointError):
        load(saved)


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(CheckpointError, match="is not a dp checkpoint, or it is truncated or corrupt"):
        load(path)


def test_a_zip_that_is_not_an_npz_is_refused(tmp_path):
    path = tmp_path / "other.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(CheckpointError, match="not a dp checkpoint"):
        load(path)


def test_an_npz_of_other_arrays_is_refused(tmp_path):
    np.savez(tmp_path / "arrays.npz", weights=np.ones(3))
    with pytest.raises(CheckpointError, match="no format version"):
        load(tmp_path / "arrays.npz")


def test_a_single_npy_array_is_refused(tmp_path):
    with open(tmp_path / "a.npz", "wb") as file:
        np.save(file, np.ones(3))
    with pytest.raises(CheckpointError, match="single array"):
        load(tmp_path / "a.npz")


def test_pickled_entries_are_never_loaded(saved):
    rewrite(saved, weight_l1=np.array([{"evil": 1}], dtype=object))  # np.savez pickles object arrays
    with pytest.raises(CheckpointError, match="pickle"):
        load(saved)


@settings(max_examples=150)
@given(fraction=st.floats(0, 1, exclude_max=True), mask=st.integers(1, 255))
def test_a_flipped_byte_is_refused_or_changes_nothing(fraction, mask):
    """A zip's CRC covers every entry, so a flip is caught, except in bytes that carry no
    data (e.g. a timestamp): then the model must come back exactly as saved."""
    model = train(dp.MLP(sizes=(3, 2, 1), seed=0), steps=2)
    with tempfile.TemporaryDirectory() as directory:
        path = save(model, Path(directory) / "m.npz", optimizer=Adam())
        data = bytearray(path.read_bytes())
        data[int(fraction * len(data))] ^= mask
        path.write_bytes(bytes(data))
        try:
            loaded = load(path)
        except CheckpointError:
            return
    assert_same_params(loaded.params, model.params)
    assert loaded.config == model.config


# ----- content that does not fit -----


def test_an_unknown_format_version_is_refused(saved):
    rewrite(saved, __dp_format__=np.array(3))
    with pytest.raises(CheckpointError, match="format version 3 is not known.*reads versions 1, 2"):
        load(saved)


@pytest.mark.parametrize("trained", [True, False])
def test_a_format_1_file_without_batch_counts_still_loads(saved, trained):
    """Format 1 had no batch counts: a stored moving variance that is not all zeros means trained."""
    old = entries(saved)
    variances = {k: (v if trained else np.zeros_like(v)) for k, v in old.items() if k.startswith("avg_variance_")}
    rewrite(saved, __dp_format__=np.array(1), batches_bn1=None, batches_bn2=None, **variances)
    model = load(saved)
    assert [norm.trained for _, norm in model.hidden] == [trained, trained]
    assert model.params["batches_bn1"][0, 0] == float(trained)
    for k, v in old.items():
        if not k.startswith(("__dp_", "batches_", "avg_variance_")):
            assert np.array_equal(model.params[k], v), k


def test_a_missing_architecture_is_refused(saved):
    rewrite(saved, __dp_model__=None)
    with pytest.raises(CheckpointError, match="no architecture"):
        load(saved)


@pytest.mark.parametrize(
    "config, message",
    [
        (np.array("{not json"), "not valid JSON"),
        (np.array("[1, 2]"), "must be a JSON object"),
        (np.array(3.0), "must be a JSON string"),
        (np.array(json.dumps({"sizes": [30, 1], "activation": "cube"})), "not a valid MLP"),
        (np.array(json.dumps({"sizes": [30, 20, 10, 1]})), "has the settings"),
        (np.array(json.dumps({**dp.MLP().config, "seed": 1})), "has the settings"),
        (np.array(json.dumps({**dp.MLP().config, "momentum": "fast"})), "momentum.*'fast'"),
        (np.array(json.dumps({**dp.MLP().config, "batch_norm": 1})), "batch_norm must be True or False"),
    ],
)
def test_an_invalid_architecture_is_refused(saved, config, message):
    rewrite(saved, __dp_model__=config)
    with pytest.raises(CheckpointError, match=message):
        load(saved)


def test_a_missing_parameter_is_refused_by_name(saved):
    rewrite(saved, avg_mean_bn2=None)
    with pytest.raises(CheckpointError, match=r"missing parameters \['avg_mean_bn2'\]"):
        load(saved)


def test_an_extra_parameter_is_refused_by_name(saved):
    rewrite(saved, weight_l9=np.ones((2, 2)))
    with pytest.raises(CheckpointError, match=r"parameters \['weight_l9'\] that the architecture does not have"):
        load(saved)


def test_an_unknown_reserved_entry_is_refused(saved):
    rewrite(saved, __dp_future__=np.array(1))
    with pytest.raises(CheckpointError, match="does not know"):
        load(saved)


def test_params_of_one_architecture_under_the_config_of_another_are_refused(saved):
    other = dp.MLP(sizes=(30, 16, 10, 1))
    rewrite(saved, __dp_model__=np.array(json.dumps(other.config)))
    with pytest.raises(CheckpointError) as info:
        load(saved)
    message = str(info.value)
    assert "'weight_l1' has shape (30, 20), the architecture needs (30, 16)" in message
    assert "'gamma_bn1' has shape (1, 20), the architecture needs (1, 16)" in message


def test_params_without_batch_norm_under_a_batch_norm_config_are_refused(tmp_path):
    plain = save(train(dp.MLP(batch_norm=False)), tmp_path / "plain.npz")
    rewrite(plain, __dp_model__=np.array(json.dumps(dp.MLP().config)))
    with pytest.raises(CheckpointError, match=r"missing parameters \['avg_mean_bn1'.*parameters \['bias_l1'"):
        load(plain)


def test_a_parameter_of_another_dtype_is_refused(saved):
    rewrite(saved, weight_l2=entries(saved)["weight_l2"].astype(np.float32))
    with pytest.raises(CheckpointError, match="'weight_l2' has dtype float32, the architecture needs float64"):
        load(saved)


def test_a_negative_moving_variance_is_refused(saved):
    rewrite(saved, avg_variance_bn1=-entries(saved)["avg_variance_bn1"] - 1)
    with pytest.raises(CheckpointError, match="'avg_variance_bn1' is a variance: it cannot be negative"):
        load(saved)


def test_a_missing_folder_is_reported_with_the_path_asked_for(model, tmp_path):
    target = tmp_path / "missing" / "model.npz"
    with pytest.raises(FileNotFoundError, match=f"cannot write {target}: No such file or directory"):
        save(model, target)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_parameter_is_refused(saved, bad):
    variance = entries(saved)["avg_variance_bn1"].copy()
    variance[0, 3] = bad
    rewrite(saved, avg_variance_bn1=variance)
    with pytest.raises(CheckpointError, match="'avg_variance_bn1' has NaN or inf"):
        load(saved)


def test_a_checkpoint_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


# ----- optimizer entries that do not fit -----


@pytest.fixture
def saved_with_adam(model, tmp_path):
    adam = Adam()
    train(model, adam, steps=2)
    return save(model, tmp_path / "c.npz", optimizer=adam)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"__dp_optimizer__": np.array(json.dumps({"name": "adagrad", "config": {}}))}, "unknown optimizer"),
        (
            {"__dp_optimizer__": np.array(json.dumps({"name": "adam", "config": {"lr": -1}}))},
            r"lr must be a finite number in \(0, inf\)",
        ),
        ({"__dp_optimizer__": np.array(json.dumps({"name": "adam"}))}, "must be"),
        ({"__dp_optimizer__": None}, "optimizer state but no optimizer"),
        ({"__dp_optimizer__/weight_l7/m": np.ones(2)}, "'weight_l7', which is not a parameter"),
        ({"__dp_optimizer__/weight_l1/m": np.ones((2, 2))}, r"'m' for 'weight_l1' has shape \(2, 2\)"),
        ({"__dp_optimizer__/weight_l1/step": np.array(0)}, "int >= 1"),
        ({"__dp_optimizer__/weight_l1/v": None}, "slots"),
    ],
)
def test_optimizer_entries_that_do_not_fit_are_refused(saved_with_adam, changes, message):
    rewrite(saved_with_adam, **changes)
    with pytest.raises(CheckpointError, match=message):
        load_with_optimizer(saved_with_adam)


def test_metadata_round_trips_and_defaults_to_empty(tmp_path):
    model = dp.nn.models.MLP(sizes=(4, 3, 1))
    dp.checkpoint.save(model, tmp_path / "with.npz", metadata={"data": {"seed": 3, "test_size": 0.2}})
    dp.checkpoint.save(model, tmp_path / "without.npz")
    assert dp.checkpoint.load_metadata(tmp_path / "with.npz") == {"data": {"seed": 3, "test_size": 0.2}}
    assert dp.checkpoint.load_metadata(tmp_path / "without.npz") == {}


def test_metadata_that_is_not_json_is_refused_before_writing(tmp_path):
    with pytest.raises(TypeError):
        dp.checkpoint.save(dp.nn.models.MLP(sizes=(4, 3, 1)), tmp_path / "bad.npz", metadata={"x": object()})
    assert not (tmp_path / "bad.npz").exists()


# ----- resource limits: refused from the zip directory and the headers, before allocating -----


def test_an_architecture_too_large_to_build_is_refused_before_any_model_is_built(saved, monkeypatch):
    rewrite(saved, __dp_model__=np.array(json.dumps({**dp.MLP().config, "sizes": [30, 20000, 20000, 1]})))
    monkeypatch.setitem(checkpoint.MODELS, "MLP", lambda **config: pytest.fail("built the model before checking"))
    with pytest.raises(CheckpointError, match=r"400,620,000 weights, more than the 50,000,000 dp loads"):
        load(saved)


def test_an_architecture_of_more_layers_than_the_file_holds_is_refused_before_any_model_is_built(saved, monkeypatch):
    rewrite(saved, __dp_model__=np.array(json.dumps({**dp.MLP().config, "sizes": [2] * 100_000})))
    monkeypatch.setitem(checkpoint.MODELS, "MLP", lambda **config: pytest.fail("built the model before checking"))
    with pytest.raises(CheckpointError, match="99,999 layers|99999 layers"):
        load(saved)


# ----- CNNs -----

IMAGES = np.random.default_rng(5).random((12, 1, 8, 8))
DIGITS = np.arange(12) % 10


def train_cnn(model, optimizer, steps=3):
    for _ in range(steps):
        optimizer.step(model.params, model.loss(IMAGES, DIGITS).grad(1))
    return model


@pytest.fixture
def cnn_saved(tmp_path):
    model, adam = dp.CNN(image=(1, 8, 8), channels=(3, 4), hidden=(5,), seed=2), Adam(lr=0.01)
    train_cnn(model, adam)
    return model, adam, save(model, tmp_path / "cnn.npz", optimizer=adam)


def test_a_cnn_and_its_adam_state_round_trip_bit_for_bit(cnn_saved):
    model, adam, path = cnn_saved
    loaded, loaded_adam = load_with_optimizer(path)
    assert type(loaded) is dp.CNN and loaded.config == model.config and repr(loaded) == repr(model)
    assert_same_params(loaded.params, model.params)
    assert type(loaded_adam) is Adam and loaded_adam.config == adam.config
    for name, slots in adam.state_dict().items():
        for slot, value in slots.items():
            assert np.asarray(loaded_adam.state_dict()[name][slot]).tobytes() == np.asarray(value).tobytes()
    assert np.array_equal(loaded.predict_proba(IMAGES), model.predict_proba(IMAGES))
    assert np.array_equal(loaded.predict(IMAGES.reshape(12, -1)), model.predict(IMAGES))
    train_cnn(model, adam, steps=2)
    train_cnn(loaded, loaded_adam, steps=2)  # training resumes where it stopped
    assert_same_params(loaded.params, model.params)


def test_a_cnn_is_stored_with_its_kind_and_an_mlp_as_it_always_was(cnn_saved, saved):
    model, _, path = cnn_saved
    stored = json.loads(str(entries(path)["__dp_model__"]))
    assert stored["model"] == "CNN" and stored["channels"] == [3, 4] and stored["hidden"] == [5]
    assert "model" not in json.loads(str(entries(saved)["__dp_model__"]))
    assert type(load(saved)) is dp.MLP


def test_a_file_that_names_an_unknown_kind_of_model_is_refused(cnn_saved):
    _, _, path = cnn_saved
    config = json.loads(str(entries(path)["__dp_model__"]))
    rewrite(path, __dp_model__=np.array(json.dumps({**config, "model": "Other"})))
    with pytest.raises(CheckpointError, match=r"is not one of dp's models \['CNN', 'MLP'\]"):
        load(path)


def test_a_cnn_file_with_the_parameters_of_another_cnn_is_refused_by_name(cnn_saved):
    _, _, path = cnn_saved
    config = json.loads(str(entries(path)["__dp_model__"]))
    rewrite(path, __dp_model__=np.array(json.dumps({**config, "channels": [3, 6]})))
    with pytest.raises(CheckpointError, match=r"'weight_conv2' has shape \(4, 3, 3, 3\), the architecture needs \(6,"):
        load(path)


def cnn_architecture(**changes):
    """The saved CNN's architecture entry with some settings changed."""
    config = dp.CNN(image=(1, 8, 8), channels=(3, 4), hidden=(5,)).config
    return np.array(json.dumps({"model": "CNN", **config, **changes}))


def refuse_to_build(monkeypatch):
    monkeypatch.setitem(checkpoint.MODELS, "CNN", lambda **config: pytest.fail("built the model before checking"))
    monkeypatch.setattr(dp.NeuralNode, "conv2d", lambda *a, **k: pytest.fail("drew weights before checking"))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"channels": [100_000, 100_000]}, r"90,002,900,050 weights, more than the 50,000,000 dp loads"),
        ({"hidden": [10**6, 10**6]}, "more than the 50,000,000 dp loads"),
        ({"image": [1, 10**5, 10**5]}, "more than the 50,000,000 dp loads"),
        ({"kernel_size": 10**4}, "more than the 50,000,000 dp loads"),
    ],
)
def test_a_cnn_architecture_too_large_to_build_is_refused_before_it_is_built(cnn_saved, monkeypatch, changes, message):
    _, _, path = cnn_saved
    rewrite(path, __dp_model__=cnn_architecture(**changes))
    refuse_to_build(monkeypatch)
    with pytest.raises(CheckpointError, match=message):
        load(path)


@pytest.mark.parametrize("missing", ["image", "kernel_size", "hidden", "classes"])
def test_a_cnn_architecture_that_leaves_out_a_size_is_refused_before_it_is_built(cnn_saved, monkeypatch, missing):
    """Built with that setting's default, a file's huge channels would be drawn before the
    settings are compared."""
    _, _, path = cnn_saved
    config = json.loads(str(cnn_architecture(channels=[100_000, 100_000])))
    del config[missing]
    rewrite(path, __dp_model__=np.array(json.dumps(config)))
    refuse_to_build(monkeypatch)
    with pytest.raises(CheckpointError, match=rf"does not state \['{missing}'\]"):
        load(path)


def test_a_cnn_image_too_small_for_its_blocks_is_refused_before_any_weight_is_drawn(cnn_saved, monkeypatch):
    _, _, path = cnn_saved
    rewrite(path, __dp_model__=cnn_architecture(image=[1, 2, 2], channels=[100_000, 100_000]))
    monkeypatch.setattr(dp.NeuralNode, "conv2d", lambda *a, **k: pytest.fail("drew weights before checking"))
    with pytest.raises(CheckpointError, match=r"not a valid CNN: the image \(1, 2, 2\) is too small for 2 blocks"):
        load(path)


@pytest.fixture
def reads(monkeypatch):
    """The shape and item size of each array load reads the data of."""
    shapes, real = [], np.lib.format.read_array

    def spy(file, *args, **kwargs):
        array = real(file, *args, **kwargs)
        shapes.append((array.shape, array.dtype.itemsize))
        return array

    monkeypatch.setattr(np.lib.format, "read_array", spy)
    return shapes


@pytest.mark.parametrize(
    "entry",
    [
        {"junk": np.zeros((1000, 1000))},  # a parameter the architecture does not have
        {"weight_l1": np.zeros((1000, 1000))},  # a parameter of the wrong shape
        {
            "__dp_optimizer__": np.array(json.dumps({"name": "sgd", "config": {"lr": 0.1}})),
            "__dp_optimizer__/weight_l1/step": np.zeros((1000, 1000), dtype=np.int64),
        },
    ],
    ids=["unknown entry", "wrong shape", "optimizer step"],
)
def test_a_large_entry_that_does_not_fit_the_architecture_is_refused_without_being_read(saved, reads, entry):
    arrays = {**entries(saved), **entry}
    np.savez_compressed(saved, **arrays)  # 8 MB of zeros in a few kB, as a zip bomb is made
    assert saved.stat().st_size < 100_000
    with pytest.raises(CheckpointError):
        load(saved)
    assert all(shape != (1000, 1000) for shape, _ in reads)


def test_an_entry_whose_header_declares_more_data_than_the_file_holds_is_refused_before_allocating(saved, reads):
    header = tempfile.SpooledTemporaryFile()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    header.seek(0)
    with zipfile.ZipFile(saved, "a") as archive:
        archive.writestr("junk.npy", header.read() + b"\0" * 64)  # 8 TB declared, 64 bytes stored
    with pytest.raises(CheckpointError, match="declares 8,000,000,000,000 bytes but holds"):
        load(saved)
    assert reads == []


def test_a_json_entry_longer_than_the_limit_is_refused_before_it_is_read(saved, reads, monkeypatch):
    rewrite(saved, __dp_metadata__=np.array(json.dumps({"notes": "x" * 2000})))
    monkeypatch.setattr(checkpoint, "MAX_TEXT", 1000)
    with pytest.raises(CheckpointError, match="longer than the 1,000 characters"):
        load(saved)
    assert max(size for _, size in reads) < 4 * 1000  # the metadata (4 bytes a character) was not read


@pytest.mark.parametrize("key", ["__dp_model__", "__dp_metadata__"])
@pytest.mark.parametrize("depth", [101, 100_000])
def test_deeply_nested_json_is_the_checkpoint_error_not_a_recursion_error(saved, key, depth):
    rewrite(saved, **{key: np.array("[" * depth + "]" * depth)})
    with pytest.raises(CheckpointError, match="nested more than 100 levels deep"):
        load(saved)


def test_save_refuses_metadata_nested_too_deeply_and_writes_nothing(model, tmp_path):
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(CheckpointError, match="nested more than 100 levels deep"):
        save(model, tmp_path / "m.npz", metadata={"deep": deep})
    assert list(tmp_path.iterdir()) == []


def test_a_cnn_architecture_of_more_layers_than_the_file_holds_is_refused_before_it_is_built(cnn_saved, monkeypatch):
    """A file of a few kilobytes must not make the reader build (or check) a network of many
    thousand layers, one registration at a time."""
    _, _, path = cnn_saved
    rewrite(path, __dp_model__=cnn_architecture(hidden=[1] * 10_000))
    refuse_to_build(monkeypatch)
    with pytest.raises(
        CheckpointError, match=r"has 10,003 layers, but the file holds only \d+ parameters|10003 layers"
    ):
        load(path)


@pytest.mark.parametrize("kind", [[1], {"a": 1}, 3, None])
def test_a_model_kind_that_is_not_a_name_is_a_checkpoint_error(cnn_saved, kind):
    _, _, path = cnn_saved
    config = json.loads(str(entries(path)["__dp_model__"]))
    rewrite(path, __dp_model__=np.array(json.dumps({**config, "model": kind})))
    with pytest.raises(CheckpointError, match="is not one of dp's models"):
        load(path)
