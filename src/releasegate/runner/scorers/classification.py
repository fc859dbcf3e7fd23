"""Scorers for classifiers: was the label right, and how balanced is the whole.

Accuracy is a mean of case values, but a router that sends everything to the
biggest queue can look accurate; macro-F1 weighs every label equally, so it is
computed over the corpus (``aggregate``), not averaged per case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from releasegate.domain.results import Case, CaseOutput, Score
from releasegate.runner.scorers import ParamError, check_params, expected_of, failed_output
from releasegate.runner.scorers.base import BaseScorer

DEFAULT_FIELD = "label"


class LabelAccuracy(BaseScorer):
    """The predicted label equals ``str(case.expected)``: value 1 or 0.

    The prediction is ``output.data[field]``; without ``field``, the data's
    ``label`` when it has one, else the stripped output text.
    """

    kind: ClassVar[str] = "label_accuracy"

    def __init__(self, params: Mapping[str, Any], *, name: str | None = None) -> None:
        super().__init__(params, name=name)
        check_params(self.params, {"field"})
        field = self.params.get("field")
        if field is not None and not (isinstance(field, str) and field):
            raise ParamError("field", f"must be the name of an output data field, got {field!r}")
        self.field: str | None = field
        self.params = {"field": field}

    def predicted(self, output: CaseOutput) -> str | None:
        """The label ``output`` predicts, or None for a failed call or a missing field."""
        if output.error is not None:
            return None
        if self.field is not None:
            if output.data is None or self.field not in output.data:
                return None
            return str(output.data[self.field])
        if output.data is not None and DEFAULT_FIELD in output.data:
            return str(output.data[DEFAULT_FIELD])
        return output.text.strip()

    def score(self, case: Case, output: CaseOutput) -> Score:
        if (failed := failed_output(output)) is not None:
            return failed
        expected = str(expected_of(case, self.kind))
        label = self.predicted(output)
        if label is None:
            return self.verdict(0.0, f"no field '{self.field}' in the output data")
        if label == expected:
            return self.verdict(1.0, f"label {label!r}")
        return self.verdict(0.0, f"predicted {label!r}, expected {expected!r}")


class MacroF1(LabelAccuracy):
    """Per case the same as label accuracy; over the corpus, the macro-averaged F1.

    Labels are the union of expected and predicted ones (sklearn's default), so
    a label the model invents counts as an F1 of 0. A failed call is a miss for
    its expected label and predicts nothing.
    """

    kind: ClassVar[str] = "macro_f1"

    def aggregate(self, cases: Sequence[Case], outputs: Sequence[CaseOutput]) -> float | None:
        if len(cases) != len(outputs):
            raise ValueError(f"{len(cases)} cases but {len(outputs)} outputs")
        return macro_f1(*self._labels(cases, outputs))

    def on_rows(
        self, cases: Sequence[Case], outputs: Sequence[CaseOutput]
    ) -> Callable[[npt.NDArray[np.int64]], float]:
        """``aggregate`` of any selection of these (case, output) rows, by row index, with
        the labels encoded once: a bootstrap calls it a thousand times per metric."""
        if len(cases) != len(outputs):
            raise ValueError(f"{len(cases)} cases but {len(outputs)} outputs")
        truth, guess, n = _encoded(*self._labels(cases, outputs))
        return lambda rows: _macro_f1_encoded(truth[rows], guess[rows], n)

    def _labels(
        self, cases: Sequence[Case], outputs: Sequence[CaseOutput]
    ) -> tuple[list[str], list[str | None]]:
        expected = [str(expected_of(case, self.kind)) for case in cases]
        return expected, [self.predicted(output) for output in outputs]


def macro_f1(expected: Sequence[str], predicted: Sequence[str | None]) -> float:
    """Unweighted mean of per-label F1 = 2TP / (2TP + FP + FN); 0.0 with no cases.

    That form equals sklearn's precision/recall F1 with ``zero_division=0`` for
    every label in the union, including labels never predicted or never expected.
    """
    return _macro_f1_encoded(*_encoded(expected, predicted))


Encoded = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int]


def _encoded(expected: Sequence[str], predicted: Sequence[str | None]) -> Encoded:
    """Labels as indices into their sorted union; a missing prediction is -1."""
    labels = sorted(set(expected) | {p for p in predicted if p is not None})
    index = {label: i for i, label in enumerate(labels)}
    truth = np.array([index[e] for e in expected], dtype=np.int64)
    guess = np.array([index[p] if p is not None else -1 for p in predicted], dtype=np.int64)
    return truth, guess, len(labels)


def _macro_f1_encoded(truth: npt.NDArray[np.int64], guess: npt.NDArray[np.int64], n: int) -> float:
    """``macro_f1`` over encoded rows: the labels are those these rows expect or predict."""
    if truth.size == 0:
        return 0.0
    hits = truth == guess
    predicted = guess[guess >= 0]
    tp = np.bincount(truth[hits], minlength=n)
    fn = np.bincount(truth[~hits], minlength=n)
    fp = np.bincount(guess[~hits & (guess >= 0)], minlength=n)
    seen = (np.bincount(truth, minlength=n) + np.bincount(predicted, minlength=n)) > 0
    f1 = 2 * tp[seen] / (2 * tp[seen] + fp[seen] + fn[seen])
    return float(f1.mean())
