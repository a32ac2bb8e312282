"""The openai engine against a real OpenAI-compatible server: llama-cpp-python's bundled server
(started here on 127.0.0.1) on the tiny GGUF, sometimes behind a recording proxy that injects
429 / 500 answers. Decisions must equal the llamacpp engine's on the same file."""

from __future__ import annotations

import dataclasses
import json
import threading
import time

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("openai")

import jmedllm.benchmarks as benchmarks  # noqa: E402
from jmedllm.engines.base import EngineError  # noqa: E402
from jmedllm.engines.llamacpp import LlamaCppEngine  # noqa: E402
from jmedllm.engines.openai import OpenAIEngine  # noqa: E402
from jmedllm.evaluate import EvalConfig, run_eval  # noqa: E402

from servers import LlamaServer, RecordingProxy  # noqa: E402

pytestmark = pytest.mark.slow  # real servers / GGUF export: seconds each (still run in CI)

BENCH = ["igakuqa:2022:A"]
N = 8
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")


@pytest.fixture(scope="module")
def server(tiny_sp_gguf, tmp_path_factory):
    with LlamaServer(tiny_sp_gguf, tmp_path_factory.mktemp("server-logs")) as s:
        yield s


@pytest.fixture(scope="module")
def llama(tiny_sp_gguf):
    engine = LlamaCppEngine(tiny_sp_gguf, n_ctx=2048, n_threads=1)
    yield engine
    engine.close()


def cfg(out, data_root, mode, **kw):
    return EvalConfig(**(dict(model="tiny", benchmarks=BENCH, out=str(out), data_root=str(data_root), limit=N,
                              mode=mode, bootstrap=50, chunk_size=4, max_new_tokens=6, top_logprobs=4000) | kw))


def items(out):
    return [json.loads(x) for x in (out / "items.jsonl").read_text().splitlines()]


def api(url, **kw):
    # llama-cpp-python's server applies repeat_penalty 1.1 by default, even to greedy decoding
    kw = dict(extra_body={"repeat_penalty": 1.0}, api="completions", max_retries=3, timeout=60, concurrency=2) | kw
    return OpenAIEngine("tiny", base_url=url, **kw)


@pytest.mark.parametrize("mode", ["generate", "letter", "loglik"])
def test_same_decisions_as_llamacpp_engine(mode, server, llama, tmp_path, data_root):
    ours = run_eval(cfg(tmp_path / "api", data_root, mode), engine=api(server.url))
    local = run_eval(cfg(tmp_path / "local", data_root, mode), engine=llama)
    a, b = items(ours), items(local)
    assert [r["verdict"]["predicted"] for r in a] == [r["verdict"]["predicted"] for r in b]
    if mode == "generate":
        assert [r["output"] for r in a] == [r["output"] for r in b]
    if mode == "loglik":
        for ra, rb in zip(a, b):
            for ga, gb in zip(ra["scores"], rb["scores"]):
                assert ga[0]["logprob"] == pytest.approx(gb[0]["logprob"], abs=1e-3)
    if mode == "letter":
        assert a[0]["letter_via"] == "top_logprobs"


def test_rerun_costs_no_request(server, tmp_path, data_root):
    first = api(server.url)
    run_eval(cfg(tmp_path / "run", data_root, "letter"), engine=first)
    assert first.usage()["requests_sent"] == N
    (tmp_path / "run" / "items.jsonl").unlink()  # forget the items; the response cache remains
    (tmp_path / "run" / "summary.json").unlink()
    second = api(server.url)
    run_eval(cfg(tmp_path / "run", data_root, "letter"), engine=second)
    assert second.usage()["requests_sent"] == 0 and second.usage()["cache_hits"] == N


def test_server_killed_mid_run_resumes_identical(tiny_sp_gguf, tmp_path, data_root):
    reference = None
    with LlamaServer(tiny_sp_gguf, tmp_path) as s:
        reference = items(run_eval(cfg(tmp_path / "ref", data_root, "generate", limit=12), engine=api(s.url)))
        port = s.port
    s = LlamaServer(tiny_sp_gguf, tmp_path, port=port).start()
    engine = api(s.url, max_requests=None)
    engine.concurrency = 1
    errors = []

    def go():
        try:
            run_eval(cfg(tmp_path / "run", data_root, "generate", limit=12), engine=engine)
        except EngineError as exc:
            errors.append(str(exc))

    t = threading.Thread(target=go)
    t.start()
    deadline = time.monotonic() + 120
    while engine.usage().get("cached_responses", 0) < 5 and time.monotonic() < deadline and t.is_alive():
        time.sleep(0.05)
    s.stop()  # killed mid-run
    t.join(timeout=180)
    assert errors and "rerun the same command" in errors[0]
    done_before = len(items(tmp_path / "run"))
    assert 0 < done_before < 12
    with LlamaServer(tiny_sp_gguf, tmp_path, port=port) as s2:
        resumed = api(s2.url)
        run_eval(cfg(tmp_path / "run", data_root, "generate", limit=12), engine=resumed)
    final = items(tmp_path / "run")
    assert [(r["key"], r["output"]) for r in final] == [(r["key"], r["output"]) for r in reference]
    assert resumed.usage()["requests_sent"] < 12  # answers received before the kill were not asked again


def test_server_that_cannot_echo_gives_the_clear_error(tiny_sp_gguf, tmp_path, data_root):
    from jmedllm.evaluate import EvalError

    with LlamaServer(tiny_sp_gguf, tmp_path, logits_all=False) as s:
        with pytest.raises(EngineError, match="--mode letter.*--mode generate"):
            run_eval(cfg(tmp_path / "run", data_root, "loglik", limit=2), engine=api(s.url, max_retries=0))
    assert EvalError  # the CLI shows EngineError as a user error (commands/eval.py)


def test_429_and_500_retried_logged_nothing_lost_and_key_never_written(server, tmp_path, data_root, monkeypatch):
    key = "sk-test-FAKE-0123456789abcdef"
    monkeypatch.setenv("JMEDLLM_TEST_KEY", key)
    direct = items(run_eval(cfg(tmp_path / "direct", data_root, "letter"), engine=api(server.url)))
    with RecordingProxy(server.port) as proxy:
        proxy.inject = [429, 500, 429]
        engine = api(proxy.url, api_key_env="JMEDLLM_TEST_KEY")
        out = run_eval(cfg(tmp_path / "run", data_root, "letter"), engine=engine)
    assert proxy.injected == [429, 500, 429]
    assert any(v == f"Bearer {key}" for r in proxy.records for v in r["headers"].values())  # the key was used
    got = items(out)
    assert [(r["key"], r["scores"]) for r in got] == [(r["key"], r["scores"]) for r in direct]
    usage = json.loads((out / "summary.json").read_text())["engine_usage"]
    assert usage["http_status"]["429"] == 2 and usage["http_status"]["500"] == 1 and usage["retries"] == 3
    events = [json.loads(x) for x in (out / "api_events.jsonl").read_text().splitlines()]
    assert sorted(e["status"] for e in events) == [429, 429, 500]
    for f in out.rglob("*"):
        if f.is_file():
            assert key.encode() not in f.read_bytes(), f"{f} holds the key"


def test_image_item_goes_as_data_url_and_text_engine_skips_it(server, llama, tmp_path, data_root, monkeypatch):
    image = tmp_path / "x.png"
    image.write_bytes(PNG)
    real = benchmarks.load_benchmark

    def load(spec, root=None, **kw):
        bench = real(spec, root, **kw)
        qs = tuple(dataclasses.replace(q, images=(str(image),)) if i == 0 else q for i, q in enumerate(bench.questions))
        return dataclasses.replace(bench, questions=qs)

    monkeypatch.setattr(benchmarks, "load_benchmark", load)
    with RecordingProxy(server.port) as proxy:
        engine = OpenAIEngine("tiny", base_url=proxy.url, api="chat", max_retries=0)
        try:
            run_eval(cfg(tmp_path / "vision", data_root, "generate", limit=2), engine=engine)
        except EngineError:
            pass  # a text model's server may refuse image parts; what was sent is the point here
    sent = [r["body"] for r in proxy.records if r["body"] and "messages" in r["body"]]
    parts = [p for b in sent for m in b["messages"] if isinstance(m["content"], list) for p in m["content"]]
    urls = [p["image_url"]["url"] for p in parts if p.get("type") == "image_url"]
    assert urls and urls[0].startswith("data:image/png;base64,")
    out = run_eval(cfg(tmp_path / "text", data_root, "generate", limit=2), engine=llama)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["skipped"]["image"]["count"] == 1 and summary["overall"]["n"] == 1
