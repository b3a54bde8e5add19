"""`BatchNormMLPClassifier`: a `dp.nn.models.MLP` as a scikit-learn classifier.

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from dp.tools.sklearn import BatchNormMLPClassifier

    clf = make_pipeline(StandardScaler(), BatchNormMLPClassifier(random_state=0))
    clf.fit(X, y).score(X_test, y_test)

It follows scikit-learn's estimator contract and passes its estimator checks
(``tests/test_sklearn.py``): hyperparameters are set in ``__init__`` and only
read in ``fit``; inputs are validated with scikit-learn's own utilities; labels
can be anything `numpy.unique` can sort (ints, strings, negative numbers).

The estimator does not scale its inputs. Batch norm standardizes every hidden
layer, but the first linear layer still sees the raw features, so put a
``StandardScaler`` in front of it in a ``Pipeline``: then the scaler's
statistics come from the training rows only, also inside cross-validation.

Importing this module imports scikit-learn (the ``train`` extra), which is why
``dp`` itself does not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from dp.checks import Flag, OneOf, Real, Several, Whole, install_hint
from dp.nn.activations import ACTIVATIONS
from dp.nn.models import MLP
from dp.optim import OPTIMIZERS, Optimizer, make_optimizer
from dp.train import SCHEDULES, History, fit

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, clone  # type: ignore[import-untyped]
    from sklearn.preprocessing import LabelEncoder  # type: ignore[import-untyped]
    from sklearn.utils import check_random_state  # type: ignore[import-untyped]
    from sklearn.utils.multiclass import check_classification_targets  # type: ignore[import-untyped]
    from sklearn.utils.validation import check_is_fitted, validate_data  # type: ignore[import-untyped]
except ImportError as error:  # as every other extra: say how to install it
    raise ImportError(f"dp.sklearn needs scikit-learn, {install_hint('train')}") from error


class BatchNormMLPClassifier(ClassifierMixin, BaseEstimator):
    """A multi-layer perceptron with batch norm, trained with a dp optimizer.

    The network is ``dp.nn.models.MLP(sizes=(n_features, *hidden_layer_sizes, outputs))``:
    one sigmoid output for two classes, a softmax over k outputs for k > 2.

    Parameters
    ----------
    hidden_layer_sizes : sequence of int (or one int), default (20, 10)
        Widths of the hidden layers; ``()`` is logistic regression.
    batch_norm : bool, default True
        Batch norm after each hidden linear layer (which then has no bias).
    activation : {"tanh", "relu", "sigmoid"}, default "tanh"
    optimizer : {"sgd", "momentum", "rmsprop", "adam"}, default "adam"
        A `dp.optim` optimizer with its default hyperparameters besides the rate.
    learning_rate : float > 0, default 0.01
        The optimizer's initial learning rate.
    max_iter : int >= 1, default 100
        Epochs (passes over the training rows) that ``fit`` runs.
    batch_size : int >= 2, default 50
        Rows per optimizer step, clipped to the number of training rows. An
        epoch drops the last rows that do not fill a batch (a batch of one row
        cannot be batch-normalized), a different few each epoch.
    schedule : {"constant", "cosine"}, default "cosine"
        The learning rate over ``fit``'s steps; ``partial_fit`` always uses a
        constant rate (it does not know how many calls will follow).
    batch_norm_momentum : float in (0, 1], default 0.1
        Weight of each new batch in the moving averages (PyTorch's convention;
        Keras's ``momentum`` is 1 minus this).
    batch_norm_eps : float > 0, default 1e-5
    random_state : int, RandomState or None, default None
        Seeds the initial weights and the order of the rows. An int makes ``fit``
        deterministic: the same data give bit-identical models. None draws new
        seeds at every ``fit``.
    verbose : bool, default False
        Show a progress bar while training.

    Attributes
    ----------
    classes_ : ndarray (n_classes,)
        The sorted labels seen in ``fit`` (or given to the first ``partial_fit``).
    n_features_in_, feature_names_in_ : as in every scikit-learn estimator.
    model_ : dp.nn.models.MLP
        The trained network, in eval mode. Its class indices are positions in ``classes_``.
    optimizer_ : dp.optim.Optimizer
        The optimizer, with its state; ``partial_fit`` continues with it.
    loss_curve_ : list of float
        Mean training cross-entropy per row, one entry per epoch, over all calls.
    n_iter_ : int
        Epochs run: ``max_iter`` after ``fit``, plus one per ``partial_fit``.
    """

    # Checked by `fit` and `partial_fit`, as dp.checks constraints. (Not scikit-learn's own
    # ``_parameter_constraints``, which holds constraints of scikit-learn's kind.)
    _hyperparameter_constraints: ClassVar[dict[str, Any]] = {
        "hidden_layer_sizes": Several(Whole("[1, inf)")),
        "batch_norm": Flag(),
        "activation": OneOf(*ACTIVATIONS),
        "optimizer": OneOf(*OPTIMIZERS, ignore_case=True),
        "learning_rate": Real("(0, inf)"),
        "max_iter": Whole("[1, inf)"),
        "batch_size": Whole("[2, inf)"),  # a batch of one row cannot be batch-normalized
        "schedule": OneOf(*SCHEDULES),
        "batch_norm_momentum": Real("(0, 1]"),
        "batch_norm_eps": Real("(0, inf)"),
    }

    def __init__(
        self,
        hidden_layer_sizes: Sequence[int] | int = (20, 10),
        batch_norm: bool = True,
        activation: str = "tanh",
        optimizer: str = "adam",
        learning_rate: float = 0.01,
        max_iter: int = 100,
        batch_size: int = 50,
        schedule: str = "cosine",
        batch_norm_momentum: float = 0.1,
        batch_norm_eps: float = 1e-5,
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.batch_norm = batch_norm
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.schedule = schedule
        self.batch_norm_momentum = batch_norm_momentum
        self.batch_norm_eps = batch_norm_eps
        self.random_state = random_state
        self.verbose = verbose

    # ----- training -----

    def fit(self, X: Any, y: Any) -> BatchNormMLPClassifier:
        """Train a new network on X (n_samples, n_features) and labels y (n_samples,).

        Raises ``ValueError`` (or ``TypeError``, as scikit-learn's validation does)
        for a bad hyperparameter, fewer than 2 rows, NaN or inf, non-numeric
        features, labels that are not classes (e.g. continuous), or a single
        class; `dp.train.Diverged` if training produces NaN or inf. On any error
        the estimator is left exactly as it was (a fitted one stays fitted).
        """
        hyperparameters = self._checked_hyperparameters()
        X, y, seen = self._validated(X, y, reset=True)
        encoder = LabelEncoder().fit(y)
        if len(encoder.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes, but the data contains only "
                f"one class: {encoder.classes_.tolist()}"
            )
        model, optimizer, order_seed = self._new_network(hyperparameters, X.shape[1], len(encoder.classes_))
        epochs = hyperparameters["max_iter"]
        history = self._train(model, optimizer, X, encoder.transform(y), epochs, hyperparameters, order_seed)
        self._set_fitted(seen, encoder.classes_, model, optimizer, order_seed, history.loss, epochs)
        return self

    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> BatchNormMLPClassifier:
        """One epoch of training on X, y, continuing from the current network and
        optimizer state. The first call (on an unfitted estimator) creates them and
        needs ``classes``: every label that will ever be seen, at least two.

        The learning rate is constant (``schedule`` applies to ``fit`` only). Errors
        as `fit`, plus ``ValueError`` for labels not in ``classes_`` or a ``classes``
        that differs from ``classes_``. All or nothing: on any error the network,
        the optimizer state and every attribute are exactly as before.
        """
        first = not hasattr(self, "classes_")
        hyperparameters = {**self._checked_hyperparameters(), "schedule": "constant"}
        encoder = self._encoder(classes, first)
        X, y, seen = self._validated(X, y, reset=first)
        labels = encoder.transform(y)  # ValueError naming labels not in the classes
        if first:
            model, optimizer, order_seed = self._new_network(hyperparameters, X.shape[1], len(encoder.classes_))
            curve, epochs = [], 0
        else:
            model, optimizer, order_seed = self.model_, self.optimizer_, self._order_seed
            curve, epochs = self.loss_curve_, self.n_iter_
        saved = model.get_param(), optimizer.state_dict()
        try:
            history = self._train(model, optimizer, X, labels, 1, hyperparameters, order_seed + epochs)
        except BaseException:  # fit undoes a failed step; the steps before it in this epoch are undone here
            model.set_param(saved[0])
            optimizer.load_state_dict(saved[1])
            raise
        self._set_fitted(seen, encoder.classes_, model, optimizer, order_seed, [*curve, *history.loss], epochs + 1)
        return self

    def _encoder(self, classes: Any, first: bool) -> LabelEncoder:
        """The label encoder of ``partial_fit``: of ``classes`` at the first call (which needs
        them, at least two), of ``classes_`` at the next (where ``classes`` may be left out)."""
        if not first:
            if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
                raise ValueError(
                    f"classes={np.unique(classes)} differs from classes_={self.classes_} of the first call"
                )
            return LabelEncoder().fit(self.classes_)
        if classes is None:
            raise ValueError("classes must be given at the first call to partial_fit: every label that will be seen")
        encoder = LabelEncoder().fit(classes)
        if len(encoder.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 classes, got classes={encoder.classes_}")
        return encoder

    def _validated(self, X: Any, y: Any, reset: bool) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """X as float64 and y, validated by scikit-learn, and the attributes that validation
        records (``n_features_in_``, ``feature_names_in_``), which are only stored when
        training succeeds: ``validate_data(self, ...)`` would store them at once."""
        checked = clone(self) if reset else self
        X, y = validate_data(checked, X, y, dtype=np.float64, ensure_min_samples=2, reset=reset)
        check_classification_targets(y)
        return X, y, {k: v for k, v in vars(checked).items() if k in _VALIDATION_ATTRIBUTES}

    def _new_network(
        self, hyperparameters: dict[str, Any], n_features: int, n_classes: int
    ) -> tuple[MLP, Optimizer, int]:
        """A new network and optimizer, and the seed of the row order, all from ``random_state``."""
        init_seed, order_seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max, size=2)
        model = MLP(
            sizes=(n_features, *hyperparameters["hidden_layer_sizes"], 1 if n_classes == 2 else n_classes),
            batch_norm=hyperparameters["batch_norm"],
            activation=hyperparameters["activation"],
            seed=int(init_seed),
            momentum=hyperparameters["batch_norm_momentum"],
            eps=hyperparameters["batch_norm_eps"],
        )
        optimizer = make_optimizer(hyperparameters["optimizer"], lr=hyperparameters["learning_rate"])
        return model, optimizer, int(order_seed)

    def _train(
        self,
        model: MLP,
        optimizer: Optimizer,
        X: np.ndarray,
        labels: np.ndarray,
        epochs: int,
        hyperparameters: dict[str, Any],
        seed: int,
    ) -> History:
        """`dp.train.fit` for ``epochs`` over all of X; the model is left in eval mode."""
        history = fit(
            model,
            X,
            labels,
            optimizer,
            epochs=epochs,
            batch_size=min(hyperparameters["batch_size"], len(X)),
            seed=seed,
            schedule=hyperparameters["schedule"],
            progress=bool(self.verbose),
        )
        model.eval()
        return history

    def _set_fitted(self, seen, classes, model, optimizer, order_seed, loss_curve, n_iter) -> None:
        """Store the result of a successful fit, replacing every earlier fitted attribute."""
        for name in _VALIDATION_ATTRIBUTES:
            self.__dict__.pop(name, None)  # data without column names must not keep the old names
        self.__dict__.update(seen)
        self.classes_, self.model_, self.optimizer_, self._order_seed = classes, model, optimizer, order_seed
        self.loss_curve_, self.n_iter_ = loss_curve, n_iter

    def _checked_hyperparameters(self) -> dict[str, Any]:
        """Every hyperparameter of `_hyperparameter_constraints`, checked (scikit-learn
        estimators check them in ``fit``, never in ``__init__``): ``{name: checked value}``,
        ``hidden_layer_sizes`` as a tuple. ``ValueError`` listing every bad one."""
        checked, problems = {}, []
        for name, constraint in self._hyperparameter_constraints.items():
            try:
                checked[name] = constraint(getattr(self, name), name)
            except (TypeError, ValueError) as error:
                problems.append(str(error))
        if problems:
            raise ValueError(f"{type(self).__name__}: " + "; ".join(problems))
        return checked

    # ----- prediction -----

    def decision_function(self, X: Any) -> np.ndarray:
        """The network's logits in eval mode: (n_samples,) for two classes (positive
        means ``classes_[1]``), else (n_samples, n_classes)."""
        x = self._features(X)
        z = self.model_.logits(x, train=False).value
        return z.ravel() if z.shape[1] == 1 else z

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities in eval mode, (n_samples, n_classes), columns in the
        order of ``classes_``; for two classes ``[1 - p, p]`` with p the sigmoid output."""
        x = self._features(X)
        p = self.model_.predict_proba(x)
        return np.hstack([1 - p, p]) if p.shape[1] == 1 else p

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row, (n_samples,), taken from ``classes_``."""
        z = self.decision_function(X)
        return self.classes_[(z > 0).astype(np.intp) if z.ndim == 1 else z.argmax(axis=1)]

    def _features(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, dtype=np.float64, reset=False)


_VALIDATION_ATTRIBUTES = ("n_features_in_", "feature_names_in_")
