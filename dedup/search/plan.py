"""Which vector index a store uses, with which search parameter, and why: the record kept in its manifest.

:mod:`dedup.search.index` decides (:func:`~dedup.search.index.build_index`); this is what it
decided, as :class:`IndexPlan`, which ``dedup info`` shows and a reopened store reuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from dedup.errors import StoreCorruptError

__all__ = ["IndexKind", "IndexPlan"]

IndexKind = Literal["flat", "hnsw", "ivf"]


@dataclass(frozen=True)
class IndexPlan:
    """Which index a store uses, with which search parameter, and why.

    Attributes:
        kind: ``"flat"``, ``"hnsw"`` or ``"ivf"``.
        reason: One sentence for users (``dedup info``).
        requested: What the user asked for: ``"auto"`` or a kind.
        param: ``efSearch`` (hnsw) or ``nprobe`` (ivf); 0 for flat.
        nlist: IVF lists; 0 otherwise.
        recall: Recall@10 against exact search measured at calibration (1.0 for flat).
        calibrated_n: Store size when the parameter was last measured.
        centroid_similarity: IVF only: mean cosine of the training vectors to their centroid.
        seconds: Time the last build/calibration took.

    """

    kind: IndexKind
    reason: str
    requested: str = "auto"
    param: int = 0
    nlist: int = 0
    recall: float = 1.0
    calibrated_n: int = 0
    centroid_similarity: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (stored in the manifest)."""
        return {
            "kind": self.kind,
            "reason": self.reason,
            "requested": self.requested,
            "param": self.param,
            "nlist": self.nlist,
            "recall": self.recall,
            "calibrated_n": self.calibrated_n,
            "centroid_similarity": self.centroid_similarity,
            "seconds": self.seconds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexPlan:
        """Inverse of :meth:`to_dict`; tolerant of manifests written before plans existed."""
        kind = str(data.get("kind", "flat")).lower()
        if kind not in ("flat", "hnsw", "ivf"):
            raise StoreCorruptError(f"unknown index kind {kind!r} in the manifest")
        return cls(
            kind=kind,  # type: ignore[arg-type]  # checked above
            reason=str(data.get("reason", "exact search")),
            requested=str(data.get("requested", "auto")),
            param=int(data.get("param", 0)),
            nlist=int(data.get("nlist", 0)),
            recall=float(data.get("recall", 1.0)),
            calibrated_n=int(data.get("calibrated_n", 0)),
            centroid_similarity=float(data.get("centroid_similarity", 0.0)),
            seconds=float(data.get("seconds", 0.0)),
        )

    def describe(self) -> str:
        """``kind (param) - reason``, for humans."""
        detail = {"flat": "exact", "hnsw": f"efSearch={self.param}", "ivf": f"nlist={self.nlist}, nprobe={self.param}"}[self.kind]
        measured = "" if self.kind == "flat" else f", recall@10 {self.recall:.3f} measured at {self.calibrated_n:,} vectors"
        return f"{self.kind} ({detail}{measured}): {self.reason}"
