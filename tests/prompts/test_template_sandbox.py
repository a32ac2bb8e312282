"""Issue 10, fault 1: prompt templates are data, not code.

Every known Jinja2 escape, in an evaluation template and in a training template, ends in a clear
UserError (exit 2) naming the template; no command runs, no file outside the template's folder is
read, nothing lands in items.jsonl or in the written training data.
"""

from __future__ import annotations

import pathlib

import pytest
from prompt_items import ja_single

from jmedllm.cli import main
from jmedllm.errors import UserError
from jmedllm.prompts import PromptTemplateError, build_prompt

SECRET = "TOPSECRET-7d1f"

# Each payload tries to run `touch {mark}` or to read {secret}; both must fail.
ESCAPES = {
    "class": "{{ text.__class__ }}",
    "mro": "{{ text.__class__.__mro__[1] }}",
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "subclasses-getitem": "{{ ''['__class__']['__mro__'][1]['__subclasses__']() }}",
    "attr-filter": "{{ (question|attr('__class__')) }}",
    "lipsum": "{{ lipsum.__globals__['os'].popen('touch {mark}').read() }}",
    "cycler": "{{ cycler.__init__.__globals__.os.popen('touch {mark}').read() }}",
    "joiner": "{{ joiner.__init__.__globals__.os.popen('touch {mark}').read() }}",
    "namespace": "{{ namespace.__init__.__globals__.os.popen('touch {mark}').read() }}",
    "template-reference": "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.popen('touch {mark}') }}",
    "builtins-open": "{{ self.__init__.__globals__.__builtins__.open('{secret}').read() }}",
    "str-format": "{{ '{0.__class__.__mro__}'.format(text) }}",
    "question-method": "{{ question.__post_init__() }}",
    "range": "{% for i in range(100000000) %}x{% endfor %}",
    "repeat": "{{ 'x' * 1000000000 }}",
    "power": "{{ 2 ** 1000000000 }}",
    "include-parent": "{% include '../secret.txt' %}",
    "include-etc": "{% include '../../../../../../../../etc/passwd' %}",
    "include-absolute": "{% include '{secret}' %}",
    "include-non-template": "{% include 'notes.txt' %}",
    "include-symlink": "{% include 'link.j2' %}",
    "import-parent": "{% import '../secret.j2' as s %}{{ s }}",
    "extends-parent": "{% extends '../secret.j2' %}",
}


@pytest.fixture
def sandbox_dir(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    (tmp_path / "secret.j2").write_text(SECRET + "\n", encoding="utf-8")
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "notes.txt").write_text(SECRET + "\n", encoding="utf-8")
    (folder / "link.j2").symlink_to(secret)
    return tmp_path, folder


def _template(folder: pathlib.Path, name: str, root: pathlib.Path) -> pathlib.Path:
    body = ESCAPES[name].replace("{mark}", str(root / "MARK")).replace("{secret}", str(root / "secret.txt"))
    path = folder / f"{name}.j2"
    path.write_text(f"Question:\n{body}\n### Response:", encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_each_escape_is_a_clear_error_and_runs_nothing(name, sandbox_dir):
    root, folder = sandbox_dir
    path = _template(folder, name, root)
    with pytest.raises(PromptTemplateError) as info:
        build_prompt(ja_single(), family="alpaca", mode="generate", template_file=path)
    assert isinstance(info.value, UserError)
    message = str(info.value)
    assert str(path) in message and ", line 2" in message, message
    assert SECRET not in message
    assert not (root / "MARK").exists()


def test_plain_data_still_renders(sandbox_dir):
    """The sandbox keeps what templates legitimately use: loops, filters, string methods, macros,
    namespace / cycler / joiner, record fields, and includes of templates in the same folder."""
    root, folder = sandbox_dir
    (folder / "header.j2").write_text("{{ words.question_label }}", encoding="utf-8")
    path = folder / "ok.j2"
    path.write_text(
        "{% include 'header.j2' %}\n"
        "{% set ns = namespace(n=0) %}{% set sep = joiner(' | ') %}{% set c = cycler('a', 'b') %}\n"
        "{% macro show(x) %}<{{ x|upper }}>{% endmacro %}\n"
        "{% for ch in choices %}{% set ns.n = ns.n + 1 %}{{ sep() }}{{ c.next() }}{{ letters[loop.index0] }}. {{ ch.strip() }}{% endfor %}\n"
        "{{ ns.n }} {{ question.id }} {{ question.n_select }} {{ show(id) }} {{ range(3)|join(',') }} {{ 2 ** 10 }}\n"
        "### Response:", encoding="utf-8")
    text = build_prompt(ja_single(), family="alpaca", mode="generate", template_file=path).text
    q = ja_single()
    assert f"{len(q.choices)} {q.id} {q.n_select} <{q.id.upper()}> 0,1,2 1024" in text
    assert "a" + "a. " + q.choices[0].strip() in text and " | b" in text


@pytest.mark.parametrize("name", ["lipsum", "template-reference", "builtins-open", "include-parent", "range"])
def test_eval_refuses_the_template_with_exit_2(name, sandbox_dir, tiny_model_dir, data_root, capsys):
    root, folder = sandbox_dir
    path = _template(folder, name, root)
    out = root / "run"
    code = main(["eval", "--model", str(tiny_model_dir), "--out", str(out), "--data-root", str(data_root),
                 "--benchmark", "igakuqa:2022:A:limit=2", "--prompt", str(path), "--bootstrap", "10"])
    err = capsys.readouterr().err
    assert code == 2 and "jmedllm eval: error:" in err and str(path) in err, err
    assert "Traceback" not in err and SECRET not in err
    assert not (root / "MARK").exists()
    assert not (out / "items.jsonl").exists()


@pytest.mark.parametrize("name", ["lipsum", "cycler", "builtins-open", "include-etc", "repeat"])
def test_training_refuses_the_template_with_exit_2(name, sandbox_dir, tiny_model_dir, data_root, capsys):
    root, folder = sandbox_dir
    path = _template(folder, name, root)
    written = root / "instructions.jsonl"
    code = main(["train", "sft", "--recipe", "tiny-sft", "--model", str(tiny_model_dir), "--data-root",
                 str(data_root), f"instructions.family={path}",
                 "instructions.sources=[{benchmark: 'igakuqa:2022:A', limit: 2}]",
                 "--output-dir", str(root / "train"), "--write-instructions", str(written)])
    err = capsys.readouterr().err
    assert code == 2 and "jmedllm train: error:" in err and str(path) in err, err
    assert SECRET not in err
    assert not (root / "MARK").exists()
    assert not written.exists()
