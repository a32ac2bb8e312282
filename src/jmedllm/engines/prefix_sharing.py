"""Score many continuations of one context in a single sequence (prefix sharing).

A request is a context and its continuations. Only the context and each continuation's
tokens *but its last* are model inputs (the last token is only predicted), so they are
packed into one row::

    [ context ........ | cont1[:-1] | cont2[:-1] | ... ]
    positions 0..C-1     C..          C..          (restart at C for every continuation)

with a tree-shaped attention mask: context tokens attend causally to the context, a
continuation token attends to the whole context and causally to its own continuation,
never to another continuation. Each continuation's first token is predicted from the
last context position, the following ones from the continuation's own positions. Hence
the context is computed once per request, and single-token continuations (letter mode:
"a" ... "e") add no input token at all: a five-choice question costs one context.

Rows are left-padded so that every row's scored positions sit at its end; the model is
then asked for the logits of the last ``keep`` positions only (``logits_to_keep``).

Tokenisation follows lm-evaluation-harness (``HFLM._encode_pair``): trailing whitespace of
the context is moved onto the continuation; the context is encoded alone, context and
continuation together, and the continuation tokens are the difference. The encoded
context is then shared by all continuations of the request.

Everything here is pure (token ids in, tensors out); the model call lives in hf.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch


def move_trailing_whitespace(context: str, continuation: str) -> tuple[str, str]:
    """Move the context's trailing whitespace onto the continuation (lm-evaluation-harness rule).

    ``("答え: ", "a")`` -> ``("答え:", " a")``: tokenizers attach a space to the following word,
    so the space must be scored as part of the continuation, not left dangling in the prompt.
    """
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation


@dataclass(frozen=True)
class EncodedRequest:
    """One request in token ids, ready for packing; ``index`` is its place in the caller's list."""

    index: int
    context: tuple[int, ...]
    continuations: tuple[tuple[int, ...], ...]
    n_chars: tuple[int, ...]
    truncated_tokens: int = 0

    @property
    def packed_length(self) -> int:
        """Tokens in the packed row: the context plus every continuation but its last token."""
        return len(self.context) + sum(len(c) - 1 for c in self.continuations)

    @property
    def scored_span(self) -> int:
        """Trailing positions of the row whose logits are needed (last context token onwards)."""
        return 1 + sum(len(c) - 1 for c in self.continuations)


def encode_request(
    index: int,
    context: str,
    continuations: Sequence[str],
    encode: Callable[[str], list[int]],
    max_length: int,
    start_ids: Sequence[int] = (),
) -> EncodedRequest:
    """Tokenise one request and left-truncate its context to fit ``max_length``.

    ``encode`` turns text into ids (with the model's BOS convention). A context that
    encodes to nothing is replaced by ``start_ids`` (BOS or EOS, as lm-evaluation-harness
    does), since the first continuation token must be predicted from something.
    Each continuation's model input is ``context + continuation[:-1]``; the context is cut
    from the left so that the longest of these fits in ``max_length`` (one cut for all
    continuations, so that they are compared under the same context) and keeps at least
    one token.
    """
    if not continuations:
        raise ValueError(f"request {index}: no continuations to score")
    ctx_text, moved = move_trailing_whitespace(context, "")
    ctx_ids = encode(ctx_text)
    conts: list[tuple[int, ...]] = []
    for j, cont in enumerate(continuations):
        if cont == "":
            raise ValueError(f"request {index}, continuation {j}: empty continuation")
        whole = encode(ctx_text + moved + cont)
        cont_ids = tuple(whole[len(ctx_ids) :])
        if not cont_ids:
            raise ValueError(f"request {index}, continuation {j} ({cont!r}): encodes to no token after its context")
        conts.append(cont_ids)
    if not ctx_ids:
        ctx_ids = list(start_ids)
    if not ctx_ids:
        raise ValueError(f"request {index}: empty context and the model has no BOS/EOS token to start from")
    longest = max(len(c) for c in conts)
    room = max_length - (longest - 1)
    if room < 1:
        raise ValueError(
            f"request {index}: a continuation of {longest} tokens does not fit in max_length={max_length}"
        )
    cut = max(0, len(ctx_ids) - room)
    return EncodedRequest(
        index=index,
        context=tuple(ctx_ids[cut:]),
        continuations=tuple(conts),
        n_chars=tuple(len(c) for c in continuations),
        truncated_tokens=cut,
    )


@dataclass
class PackedBatch:
    """Model inputs for a batch of packed rows, plus where to read each continuation's score."""

    input_ids: torch.Tensor  # (B, T) long
    position_ids: torch.Tensor  # (B, T) long
    segments: torch.Tensor  # (B, T) long: 0 context, j+1 continuation j, -1 padding
    keep: int  # logits are needed for the last `keep` positions of every row
    # one entry per scored token, flattened over the batch:
    rows: torch.Tensor  # (N,) row in the batch
    cols: torch.Tensor  # (N,) column within the kept logits (0..keep-1)
    targets: torch.Tensor  # (N,) token id to score
    owners: list[tuple[int, int]]  # (request position in batch, continuation index) per scored token
    n_real_tokens: int  # non-padding input tokens


def tree_attention_mask(segments: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive 4D mask (B, 1, T, T) for packed rows: 0 where attention is allowed, dtype-min elsewhere.

    Query q may attend key k iff k <= q, k is not padding, and k is in the context
    (segment 0) or in q's own segment. Padding queries attend to themselves only, so no
    softmax row is empty (no NaN). Additive float, because transformers passes a custom 4D
    mask through unchanged (masking_utils._preprocess_mask_arguments) and the eager
    attention adds it to the scores; SDPA accepts the same float mask.
    """
    t = segments.shape[1]
    idx = torch.arange(t, device=segments.device)
    causal = idx[None, :] <= idx[:, None]  # (T_q, T_k)
    seg_q = segments[:, :, None]
    seg_k = segments[:, None, :]
    allowed = causal[None] & (seg_k != -1) & ((seg_k == 0) | (seg_k == seg_q))
    allowed |= torch.eye(t, dtype=torch.bool, device=segments.device)[None] & (seg_q == -1)
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


def pack_batch(requests: Sequence[EncodedRequest], pad_id: int) -> PackedBatch:
    """Left-pad the packed rows of ``requests`` to one length and list the scored tokens."""
    width = max(r.packed_length for r in requests)
    keep = max(r.scored_span for r in requests)
    ids, pos, seg = [], [], []
    rows, cols, targets, owners = [], [], [], []
    for b, r in enumerate(requests):
        c = len(r.context)
        row_ids = list(r.context)
        row_pos = list(range(c))
        row_seg = [0] * c
        starts = []
        for j, cont in enumerate(r.continuations):
            starts.append(len(row_ids))
            row_ids += cont[:-1]
            row_pos += range(c, c + len(cont) - 1)
            row_seg += [j + 1] * (len(cont) - 1)
        pad = width - len(row_ids)
        ids.append([pad_id] * pad + row_ids)
        pos.append([0] * pad + row_pos)
        seg.append([-1] * pad + row_seg)
        first_kept = width - keep  # column of the row that becomes kept-logit column 0
        for j, cont in enumerate(r.continuations):
            # token 0 is predicted at the last context position, token i>0 at the
            # position of token i-1 (which sits at starts[j] + i - 1 in the row)
            predictors = [c - 1] + [starts[j] + i for i in range(len(cont) - 1)]
            for tok, p in zip(cont, predictors):
                rows.append(b)
                cols.append(pad + p - first_kept)
                targets.append(tok)
                owners.append((b, j))
    return PackedBatch(
        input_ids=torch.tensor(ids, dtype=torch.long),
        position_ids=torch.tensor(pos, dtype=torch.long),
        segments=torch.tensor(seg, dtype=torch.long),
        keep=keep,
        rows=torch.tensor(rows, dtype=torch.long),
        cols=torch.tensor(cols, dtype=torch.long),
        targets=torch.tensor(targets, dtype=torch.long),
        owners=owners,
        n_real_tokens=sum(r.packed_length for r in requests),
    )


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-pad id lists: (input_ids, attention_mask, position_ids), positions starting at 0 per row."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        if s:
            ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
            mask[i, width - len(s) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions
