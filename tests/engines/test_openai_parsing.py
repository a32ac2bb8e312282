"""OpenAI-engine response parsing on the documented response shapes (no server): echoed
completions (legacy ``logprobs``: tokens, token_logprobs, top_logprobs, text_offset)."""

import pytest

from jmedllm.engines.base import EngineError
from jmedllm.engines.openai import _public_url, continuation_score


def echoed(tokens, logprobs, tops=None):
    offsets, pos = [], 0
    for t in tokens:
        offsets.append(pos)
        pos += len(t)
    return {"choices": [{"text": "".join(tokens), "logprobs": {
        "tokens": tokens, "token_logprobs": logprobs, "text_offset": offsets,
        "top_logprobs": tops or [None] + [{t: lp} for t, lp in zip(tokens[1:], logprobs[1:])]}}]}


def test_sums_exactly_the_continuation_tokens():
    # prompt "答え：" + "肺炎", then one generated token "。" that must not count
    resp = echoed(["答え", "：", "肺", "炎", "。"], [None, -1.0, -2.0, -0.5, -3.0])
    s = continuation_score(resp, "答え：", "肺炎")
    assert s.logprob == pytest.approx(-2.5) and s.n_tokens == 2 and s.n_chars == 2
    assert s.is_greedy  # every continuation token is its position's top token


def test_not_greedy_when_another_token_ranks_higher():
    tops = [None, {"：": -1.0}, {"肺": -2.0, "心": -0.1}, {"炎": -0.5}]
    s = continuation_score(echoed(["答え", "：", "肺", "炎"], [None, -1.0, -2.0, -0.5], tops), "答え：", "肺炎")
    assert not s.is_greedy


def test_token_straddling_the_boundary_is_an_error():
    resp = echoed(["答え", "：肺", "炎"], [None, -1.0, -0.5])
    with pytest.raises(EngineError, match="straddle"):
        continuation_score(resp, "答え：", "肺炎")


def test_no_echo_names_letter_and_generate():
    # a server that ignores echo returns only the generated token, offset after the prompt
    resp = {"choices": [{"text": "。", "logprobs": {"tokens": ["。"], "token_logprobs": [-3.0],
                                                     "text_offset": [5], "top_logprobs": [{"。": -3.0}]}}]}
    with pytest.raises(EngineError, match="--mode letter.*--mode generate"):
        continuation_score(resp, "答え：", "肺炎")
    with pytest.raises(EngineError, match="--mode letter"):
        continuation_score({"choices": [{"text": "x", "logprobs": None}]}, "答え：", "肺炎")


def test_recorded_url_drops_credentials_and_query():
    assert _public_url("https://user:secret@api.example.com/v1/?key=abc") == "https://api.example.com/v1"
    assert _public_url("http://127.0.0.1:8000/v1") == "http://127.0.0.1:8000/v1"
