"""A model, its optimizer and its checkpoints under random sequences of operations.

hypothesis's `RuleBasedStateMachine` interleaves training steps, eval-mode predictions,
saves and loads. After every load the loaded model has the saved parameters and
predicts what the model predicted at the save, bit for bit. Training then goes on from
the loaded model and optimizer beside a *shadow*: an in-memory copy taken at the save,
never written to a file, that receives the same steps. The two must stay bit-identical,
which holds only if the optimizer's state (velocities, averages, step counts) made the
round trip through the file as well as the parameters did.
"""

import copy
import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import dp
from dp.optim import make_optimizer
from dp.tools.checkpoint import load_with_optimizer, save

FEATURES = 4
DATA = np.random.default_rng(0).standard_normal((64, FEATURES))
LABELS = {1: (DATA[:, 0] + DATA[:, 1] > 0).astype(float), 3: DATA[:, :3].argmax(axis=1)}  # by number of outputs
PROBE = np.random.default_rng(1).standard_normal((16, FEATURES))


def bits(array):
    return array.dtype, array.shape, array.tobytes()


def same_params(a, b):
    return a.keys() == b.keys() and all(bits(a[k]) == bits(b[k]) for k in a)


def same_optimizer(a, b):
    state, other = a.state_dict(), b.state_dict()
    return (
        (a.name, a.config) == (b.name, b.config)
        and state.keys() == other.keys()
        and all(bits(np.asarray(state[k][s])) == bits(np.asarray(other[k][s])) for k in state for s in state[k])
    )


def in_memory_copy(model, optimizer):
    """An independent copy of a model and its optimizer, made without any file."""
    twin = dp.MLP(**model.config)
    twin.set_param(model.params)
    twin_optimizer = make_optimizer(optimizer.name, **optimizer.config)
    twin_optimizer.load_state_dict(optimizer.state_dict())
    return twin, twin_optimizer


class TrainSaveLoad(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="dp-stateful-"))
        self.saves = {}  # file name -> (probe predictions, params, shadow copy) at the save

    @initialize(
        optimizer=st.sampled_from(["sgd", "momentum", "rmsprop", "adam"]),
        outputs=st.sampled_from(sorted(LABELS)),
        dtype=st.sampled_from(["float64", "float32"]),
        unbiased_average=st.booleans(),
        seed=st.integers(0, 2**16),
    )
    def build(self, optimizer, outputs, dtype, unbiased_average, seed):
        self.model = dp.MLP(sizes=(FEATURES, 6, 5, outputs), seed=seed, dtype=dtype, unbiased_average=unbiased_average)
        self.optimizer = make_optimizer(optimizer, lr=0.01)
        self.labels = LABELS[outputs]
        self.shadow, self.shadow_optimizer = in_memory_copy(self.model, self.optimizer)
        self.train_step(list(range(8)))  # batch norm must see a batch before it can evaluate

    @rule(rows=st.lists(st.integers(0, len(DATA) - 1), min_size=2, max_size=16))
    def train_step(self, rows):
        for model, optimizer in ((self.model, self.optimizer), (self.shadow, self.shadow_optimizer)):
            optimizer.step(model.params, model.loss(DATA[rows], self.labels[rows], train=True).grad(1))

    @rule()
    def predict(self):
        before = self.model.get_param()
        p = self.model.predict_proba(PROBE)
        assert p.shape == (len(PROBE), self.model.sizes[-1]) and np.isfinite(p).all()
        assert same_params(self.model.params, before)  # evaluation changes nothing

    @rule(name=st.sampled_from(["a.npz", "b.npz"]))
    def save_checkpoint(self, name):
        save(self.model, self.directory / name, self.optimizer)
        shadow = in_memory_copy(self.shadow, self.shadow_optimizer)
        self.saves[name] = (self.model.predict_proba(PROBE), self.model.get_param(), shadow)

    @precondition(lambda self: self.saves)
    @rule(data=st.data())
    def load_checkpoint(self, data):
        name = data.draw(st.sampled_from(sorted(self.saves)), label="file")
        predictions, params, shadow = self.saves[name]
        self.model, self.optimizer = load_with_optimizer(self.directory / name)
        assert same_params(self.model.params, params)
        assert bits(self.model.predict_proba(PROBE)) == bits(predictions)
        self.shadow, self.shadow_optimizer = in_memory_copy(*shadow)  # a copy: the file may be loaded again

    @invariant()
    def the_model_and_its_shadow_are_bit_identical(self):
        assert self.model.config == self.shadow.config
        assert same_params(self.model.params, self.shadow.params)
        assert same_optimizer(self.optimizer, self.shadow_optimizer)

    def teardown(self):
        shutil.rmtree(self.directory, ignore_errors=True)


TrainSaveLoad.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
test_training_saving_and_loading_in_any_order_round_trips_bit_for_bit = TrainSaveLoad.TestCase


# ----- the other ways to copy a model -----


def trained_model():
    model = dp.MLP(sizes=(FEATURES, 6, 5, 1), seed=0)
    optimizer = make_optimizer("adam", lr=0.01)
    for start in range(0, 48, 16):
        rows = slice(start, start + 16)
        optimizer.step(model.params, model.loss(DATA[rows], LABELS[1][rows]).grad(1))
    return model


def test_a_deep_copy_of_a_model_trains_without_touching_the_original():
    model = trained_model()
    before, twin = model.get_param(), copy.deepcopy(model)
    twin.loss(DATA[:16], LABELS[1][:16], train=True)  # a training forward pass updates the moving averages
    assert same_params(model.params, before)
    assert not same_params(twin.params, before)


def test_a_pickled_model_predicts_bit_identically():
    model = trained_model()
    twin = pickle.loads(pickle.dumps(model))
    assert bits(twin.predict_proba(PROBE)) == bits(model.predict_proba(PROBE))
