"""Corpus mixing for continued pretraining: medical and general text in set shares of the tokens.

``corpus.weights`` gives one weight per entry of ``corpus.paths`` (a file or folder: a *part*).
The weights are normalised to shares, and each part contributes ``share x total`` tokens, where
``total`` is the token count of all parts together: a part with fewer tokens than its share is
repeated (whole documents, in a seeded order, cycling), a part with more is cut to its share (whole
documents; the last one may overshoot by less than one document). Mixing general text in limits
forgetting of general ability; the record lists each part's documents, tokens, target share and
achieved share, and how often it was repeated.
"""

from __future__ import annotations

import random
from typing import Any, Sequence


def mix_parts(parts: Sequence[Sequence[list[int]]], weights: Sequence[float], *, seed: int = 0,
              names: Sequence[str] | None = None) -> tuple[list[list[int]], list[int], dict[str, Any]]:
    """Choose documents (token lists) from each part to reach the parts' token shares.

    Returns the chosen token lists (in a seeded interleaved order), for each the index of its source
    document within the concatenation of the parts, and statistics per part.
    """
    if len(parts) != len(weights):
        raise ValueError(f"{len(weights)} weights for {len(parts)} corpus parts")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"corpus weights must be non-negative with a positive sum, got {list(weights)}")
    names = list(names or [f"part{i}" for i in range(len(parts))])
    total = sum(len(t) for part in parts for t in part)
    shares = [w / sum(weights) for w in weights]
    rng = random.Random(seed)
    chosen: list[tuple[list[int], int]] = []
    stats = []
    offset = 0
    for part, share, name in zip(parts, shares, names):
        target = round(share * total)
        tokens = sum(len(t) for t in part)
        if target > 0 and tokens == 0:
            raise ValueError(f"corpus part {name} has no tokens but a weight of {share:.3f}")
        order = list(range(len(part)))
        got = passes = 0
        picked = 0
        while got < target:
            rng.shuffle(order)
            passes += 1
            for j in order:
                if got >= target:
                    break
                chosen.append((part[j], offset + j))
                got += len(part[j])
                picked += 1
        stats.append({"name": name, "documents": len(part), "tokens": tokens, "target_share": round(share, 4),
                      "target_tokens": target, "mixed_tokens": got, "mixed_documents": picked,
                      "passes": passes})
        offset += len(part)
    mixed = sum(s["mixed_tokens"] for s in stats)
    for s in stats:
        s["achieved_share"] = round(s["mixed_tokens"] / mixed, 4) if mixed else 0.0
    rng.shuffle(chosen)
    return [c[0] for c in chosen], [c[1] for c in chosen], {"parts": stats, "tokens": mixed}
