"""OpenAI-engine response parsing on the documented response shapes (no server): echoed
completions (legacy ``logprobs``: tokens, token_logprobs, top_logprobs, text_offset; ``usage``)."""

import pytest

from jmedllm.engines.base import EngineError
from jmedllm.engines.openai import _public_url, continuation_score


def echoed(tokens, logprobs, tops=None, generated=1):
    offsets, pos = [], 0
    for t in tokens:
        offsets.append(pos)
        pos += len(t)
    return {"usage": {"completion_tokens": generated}, "choices": [{"text": "".join(tokens), "logprobs": {
        "tokens": tokens, "token_logprobs": logprobs, "text_offset": offsets,
        "top_logprobs": tops or [None] + [{t: lp} for t, lp in zip(tokens[1:], logprobs[1:])]}}]}


CTX = echoed(["答え", "：", "。"], [None, -1.0, -3.0])  # "答え：" then one generated token


def test_sums_exactly_the_continuation_tokens():
    # prompt "答え：" + "肺炎", then one generated token "。" that must not count
    resp = echoed(["答え", "：", "肺", "炎", "。"], [None, -1.0, -2.0, -0.5, -3.0])
    s = continuation_score(resp, CTX, "答え：", "肺炎")
    assert s.logprob == pytest.approx(-2.5) and s.n_tokens == 2 and s.n_chars == 2
    assert s.is_greedy  # every continuation token is its position's top token


def test_not_greedy_when_another_token_ranks_higher():
    tops = [None, {"：": -1.0}, {"肺": -2.0, "心": -0.1}, {"炎": -0.5}]
    s = continuation_score(echoed(["答え", "：", "肺", "炎"], [None, -1.0, -2.0, -0.5], tops, generated=0), CTX,
                           "答え：", "肺炎")
    assert not s.is_greedy


def test_byte_fallback_pieces_and_drifting_offsets():
    # "肥" as byte pieces whose texts come back empty, offsets that drift (llama.cpp): counts decide
    resp = echoed(["答え", "：", "", "", "満", "。"], [None, -1.0, -0.5, -0.25, -0.125, -3.0])
    resp["choices"][0]["logprobs"]["text_offset"] = [0, 2, 3, 3, 3, 4]
    s = continuation_score(resp, CTX, "答え：", "肥満")
    assert s.n_tokens == 3 and s.logprob == pytest.approx(-0.875)


def test_token_straddling_the_boundary_is_an_error():
    resp = echoed(["答え", "：肺", "炎"], [None, -1.0, -0.5], generated=0)
    with pytest.raises(EngineError, match="straddle"):
        continuation_score(resp, CTX, "答え：", "肺炎")


def test_no_echo_names_letter_and_generate():
    # a server that ignores echo returns only the generated token, offset after the prompt
    resp = {"choices": [{"text": "。", "logprobs": {"tokens": ["。"], "token_logprobs": [-3.0],
                                                     "text_offset": [5], "top_logprobs": [{"。": -3.0}]}}]}
    with pytest.raises(EngineError, match="--mode letter.*--mode generate"):
        continuation_score(resp, resp, "答え：", "肺炎")
    with pytest.raises(EngineError, match="--mode letter"):
        continuation_score({"choices": [{"text": "x", "logprobs": None}]}, CTX, "答え：", "肺炎")


def test_recorded_url_drops_credentials_and_query():
    assert _public_url("https://user:secret@api.example.com/v1/?key=abc") == "https://api.example.com/v1"
    assert _public_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
