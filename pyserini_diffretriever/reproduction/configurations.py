"""The paper's named configurations: which backbone, adapter, K and prompt each system of the BEIR-7 table uses.

Why a table: the command line, the dry run, the result table and the README all ask the same questions (which
model, which K, which runs, which paper figure); they look the answer up here instead of keeping lists.

=====================  ==========================================  ===========  ======  ===============
name                   checkpoint (base + released LoRA adapter)   K_q / K_p    prompt  paper BEIR-7
=====================  ==========================================  ===========  ======  ===============
``llada-zs-single``    GSAI-ML/LLaDA-8B-Instruct                   1 / 1        one     0.511
``llada-zs-multi``     GSAI-ML/LLaDA-8B-Instruct                   4 / 4        few     0.540
``dream-zs-single``    Dream-org/Dream-v0-Instruct-7B              1 / 1        one     0.331
``dream-zs-multi``     Dream-org/Dream-v0-Instruct-7B              4 / 16       few     0.476
``dream-ft-single``    + ielabgroup/diffretriever-dream-7b-single  1 / 1        few     0.654
``dream-ft-multi``     + ...-dream-7b-multi-q4-p16                 4 / 16       few     0.671
``llada-ft-single``    + ielabgroup/diffretriever-llada-8b-single  1 / 1        few     ~0.643
``llada-ft-multi``     + ...-llada-8b-multi-q4-p4                  4 / 4        few     ~0.645
=====================  ==========================================  ===========  ======  ===============

Paper figures are BEIR-7 average NDCG@10 read off the reference README's plot (``docs/method.md`` §10; +-0.002,
the fine-tuned LLaDA points less certain). The plot does not name the scoring mode; we compare it with each
configuration's ``hybrid`` run (dense or multi-vector fused with sparse by the paper's min-max fusion), the full
system the paper describes. BM25 (paper 0.472) is the Anserini flat baseline every dataset gets.

Runs of a configuration: ``dense`` (mean of the normalised slot vectors, FAISS), ``multi`` (MaxSim, only when
K > 1), ``impact`` (Lucene impact index), ``hybrid`` (``multi`` or, for K = 1, ``dense``, fused with ``impact``)
and ``hybrid+bm25`` (Reciprocal Rank Fusion of ``hybrid`` with the BM25 run, Pyserini's ``reciprocal_rank_fusion``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "BM25",
    "BM25_PAPER_NDCG10",
    "CONFIGURATIONS",
    "CONFIGURATION_GROUPS",
    "Configuration",
    "UnknownConfigurationError",
    "resolve_configurations",
]

DREAM = "Dream-org/Dream-v0-Instruct-7B"
LLADA = "GSAI-ML/LLaDA-8B-Instruct"

BM25 = "bm25"
"""Name of the Anserini BM25 flat baseline (a row of the table, not a DiffRetriever configuration)."""

BM25_PAPER_NDCG10 = 0.472
"""BM25's BEIR-7 average NDCG@10 in the paper's plot (dashed line)."""


class UnknownConfigurationError(ValueError):
    """A configuration or group name that is not in :data:`CONFIGURATIONS` / :data:`CONFIGURATION_GROUPS`."""


@dataclass(frozen=True)
class Configuration:
    """One DiffRetriever system of the paper's table.

    Attributes
    ----------
    name : str
        Short name used on the command line, in folder names and in the table.
    backbone : str
        Hugging Face id of the base diffusion LM.
    adapter : str or None
        Hugging Face id of the released LoRA adapter (fine-tuned configurations), else None.
    k_query, k_passage : int
        Mask slots per query and per passage.
    prompt : str or None
        Prompt variant (``one`` for zero-shot K = 1, ``few`` otherwise); None: the adapter's own.
    paper_ndcg10 : float
        BEIR-7 average NDCG@10 in the paper's plot.
    description : str
        One line for listings.
    """

    name: str
    backbone: str
    adapter: str | None
    k_query: int
    k_passage: int
    prompt: str | None
    paper_ndcg10: float
    description: str

    @property
    def multi(self) -> bool:
        """True when a side has more than one slot, so a multi-vector (MaxSim) run exists."""
        return self.k_query > 1 or self.k_passage > 1

    @property
    def representations(self) -> tuple[str, ...]:
        """What the one encoding pass writes (``encode --representation``)."""
        return ("dense", "multi", "impact") if self.multi else ("dense", "impact")

    @property
    def hybrid_sides(self) -> tuple[str, str]:
        """The two runs the paper's min-max fusion combines: (dense side, sparse side)."""
        return ("multi" if self.multi else "dense", "impact")

    @property
    def runs(self) -> tuple[str, ...]:
        """Every run of this configuration, in table order."""
        return (*self.representations, "hybrid", "hybrid+bm25")

    @property
    def models(self) -> tuple[str, ...]:
        """Checkpoints this configuration needs (base, then adapter)."""
        return (self.backbone,) if self.adapter is None else (self.backbone, self.adapter)


def _zero_shot(name: str, backbone: str, k_query: int, k_passage: int, paper: float) -> Configuration:
    single = k_query == k_passage == 1
    return Configuration(
        name=name,
        backbone=backbone,
        adapter=None,
        k_query=k_query,
        k_passage=k_passage,
        prompt="one" if single else "few",
        paper_ndcg10=paper,
        description=f"zero-shot {backbone.split('/')[-1]}, K_q {k_query} / K_p {k_passage}",
    )


def _fine_tuned(name: str, backbone: str, adapter: str, k_query: int, k_passage: int, paper: float) -> Configuration:
    return Configuration(
        name=name,
        backbone=backbone,
        adapter=adapter,
        k_query=k_query,
        k_passage=k_passage,
        prompt="few",
        paper_ndcg10=paper,
        description=f"fine-tuned {adapter}, K_q {k_query} / K_p {k_passage}",
    )


CONFIGURATIONS: dict[str, Configuration] = {
    c.name: c
    for c in (
        _zero_shot("llada-zs-single", LLADA, 1, 1, 0.511),
        _zero_shot("llada-zs-multi", LLADA, 4, 4, 0.540),
        _zero_shot("dream-zs-single", DREAM, 1, 1, 0.331),
        _zero_shot("dream-zs-multi", DREAM, 4, 16, 0.476),
        _fine_tuned("dream-ft-single", DREAM, "ielabgroup/diffretriever-dream-7b-single", 1, 1, 0.654),
        _fine_tuned("dream-ft-multi", DREAM, "ielabgroup/diffretriever-dream-7b-multi-q4-p16", 4, 16, 0.671),
        _fine_tuned("llada-ft-single", LLADA, "ielabgroup/diffretriever-llada-8b-single", 1, 1, 0.643),
        _fine_tuned("llada-ft-multi", LLADA, "ielabgroup/diffretriever-llada-8b-multi-q4-p4", 4, 4, 0.645),
    )
}
"""Every named configuration, in table order."""

CONFIGURATION_GROUPS: dict[str, tuple[str, ...]] = {
    "all": tuple(CONFIGURATIONS),
    "zero-shot": tuple(name for name, c in CONFIGURATIONS.items() if c.adapter is None),
    "fine-tuned": tuple(name for name, c in CONFIGURATIONS.items() if c.adapter is not None),
    "paper": (
        "llada-zs-single",
        "llada-zs-multi",
        "dream-zs-single",
        "dream-zs-multi",
        "dream-ft-single",
        "dream-ft-multi",
    ),
}
"""Names that stand for several configurations (``paper``: the systems of the paper's headline table)."""


def resolve_configurations(names: Iterable[str]) -> list[Configuration]:
    """Expand group names, keep the first occurrence of each configuration, in the order given.

    Raises
    ------
    UnknownConfigurationError
        For a name that is neither a configuration nor a group; the message lists the known names.
    """
    chosen: dict[str, Configuration] = {}
    for name in names:
        if name in CONFIGURATION_GROUPS:
            members = CONFIGURATION_GROUPS[name]
        elif name in CONFIGURATIONS:
            members = (name,)
        else:
            raise UnknownConfigurationError(
                f"unknown configuration {name!r}; known configurations: {', '.join(CONFIGURATIONS)}; "
                f"groups: {', '.join(CONFIGURATION_GROUPS)}"
            )
        for member in members:
            chosen.setdefault(member, CONFIGURATIONS[member])
    return list(chosen.values())
