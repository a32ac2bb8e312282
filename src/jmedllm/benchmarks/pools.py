"""Where few-shot exemplars come from by default: never from the evaluated items.

A pool must be disjoint from what is evaluated: another exam year, another split of the
source, or nothing (the runner then refuses and asks for ``--shot-pool``).
"""

from __future__ import annotations

# Benchmarks whose source holds a split disjoint from the evaluated one: spec -> pool spec.
_DISJOINT_POOLS = {"pubmedqa": "pubmedqa:train", "igakuqa119": "igakuqa:2022"}


def default_shot_pool(spec: str) -> str | None:
    """Where few-shot exemplars come from when --shot-pool is not given; None when no pool
    disjoint from the evaluated items is known (the caller refuses and asks for --shot-pool).

    IgakuQA: another exam year (the year before the evaluated one; 2018 -> the newest
    year not evaluated); when every year is evaluated, the 119th exam for Japanese.
    IgakuQA119: the 116th exam (2022). PubMedQA: its train split (unless the train split
    itself is evaluated). YakugakuQA: another exam year, as for IgakuQA. Every other
    benchmark (MedQA, MedMCQA, MMLU, JMMLU, JJSIMQA, custom) holds only the evaluated
    split in the data root: None.
    """
    name, _, rest = spec.partition(":")
    parts = [p for p in rest.split(":") if p] if rest else []
    if name in ("igakuqa", "igakuqa-en", "yakugakuqa"):
        all_years = list(range(2018, 2023)) if name != "yakugakuqa" else list(range(2012, 2025))
        years = sorted({int(p) for p in parts if p.isdigit() and len(p) == 4})
        if not years and name == "yakugakuqa":
            years = sorted({int(p) + 1915 for p in parts if p.isdigit() and len(p) in (2, 3)})
        elif not years:
            years = sorted({int(p) + 1906 for p in parts if p.isdigit() and len(p) == 3})
        years = years or all_years
        others = [y for y in all_years if y not in years]
        if others:
            before = [y for y in others if y < years[0]]
            return f"{name}:{before[-1] if before else others[-1]}"
        return "igakuqa119" if name == "igakuqa" else None
    if name == "pubmedqa" and ("train" in parts or "all" in parts or "split=train" in parts or "split=all" in parts):
        return None
    return _DISJOINT_POOLS.get(name)


__all__ = ["default_shot_pool"]
