"""User Jinja2 templates: the documented variables, and errors that name file, line and variable."""

from __future__ import annotations

from pathlib import Path

import pytest
from prompt_items import en_context, en_select2, en_single, ja_explained, ja_numeric, ja_select2, ja_single

from jmedllm.prompts import MODES, PACKAGED_TEMPLATES, PromptTemplateError, build_prompt, sft_example

EXAMPLE = PACKAGED_TEMPLATES / "alpaca_example.j2"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("language", ["ja", "en"])
def test_packaged_example_reproduces_the_alpaca_family(mode, language):
    cases = [(ja_single(), []), (ja_single(), [ja_select2(), ja_explained()]), (en_context(), [en_single()]),
             (en_select2(), [en_context()])]
    if mode == "generate":
        cases.append((ja_numeric(), [ja_single()]))
    for question, shots in cases:
        built_in = build_prompt(question, family="alpaca", mode=mode, language=language, shots=shots)
        templated = build_prompt(question, family="alpaca", mode=mode, language=language, shots=shots,
                                 template_file=EXAMPLE)
        assert templated.text == built_in.text
        assert templated.template == str(EXAMPLE)


def test_custom_template_variables(tmp_path):
    t = tmp_path / "mine.j2"
    t.write_text(
        "{% for s in shots %}\n"
        "Q: {{ s.text }} [{{ s.letters | join('') }}] n={{ s.n_select }} -> {{ s.answer }}\n"
        "{% endfor %}\n"
        "[{{ language }}/{{ mode }}/{{ answer_style }}] {{ text }}\n"
        "{% for i in range(choices | length) %}\n"
        "({{ letters[i] }}) {{ choices[i] }}\n"
        "{% endfor %}\n"
        "{{ words.answer_header }}",
        encoding="utf-8",
    )
    p = build_prompt(en_select2(), family="terse", mode="letter", shots=[en_single()], template_file=t)
    assert p.text == (
        "Q: A 30-year-old woman has fever and neck stiffness. Which test should be done first? [abcd] n=1 -> b\n"
        "[en/letter/letter] Which two drugs are loop diuretics?\n"
        "(a) Furosemide\n(b) Spironolactone\n(c) Bumetanide\n(d) Amiloride\n"
        "Answer:"
    )


def test_undefined_variable_names_file_line_and_variable(tmp_path):
    t = tmp_path / "typo.j2"
    t.write_text("問題：{{ text }}\n{{ choises }}\n答え：", encoding="utf-8")
    with pytest.raises(PromptTemplateError) as e:
        build_prompt(ja_single(), family="alpaca", mode="letter", template_file=t)
    msg = str(e.value)
    assert "typo.j2" in msg and "line 2" in msg and "'choises' is undefined" in msg


def test_undefined_attribute_of_a_shot(tmp_path):
    t = tmp_path / "shot.j2"
    t.write_text("{% for s in shots %}\n{{ s.anser }}\n{% endfor %}\n{{ text }}", encoding="utf-8")
    with pytest.raises(PromptTemplateError, match=r"shot.j2, line 2: .*anser"):
        build_prompt(ja_single(), family="alpaca", mode="generate", shots=[ja_select2()], template_file=t)


def test_syntax_error_names_line(tmp_path):
    t = tmp_path / "broken.j2"
    t.write_text("{{ text }}\n{% for c in choices %}\n{{ c }}\n", encoding="utf-8")
    with pytest.raises(PromptTemplateError, match=r"broken.j2, line \d+: template syntax error"):
        build_prompt(ja_single(), family="alpaca", mode="generate", template_file=t)


def test_missing_template_file(tmp_path):
    with pytest.raises(PromptTemplateError, match="nope.j2 not found"):
        build_prompt(ja_single(), family="alpaca", mode="generate", template_file=tmp_path / "nope.j2")


def test_scoring_prompt_must_not_end_in_whitespace(tmp_path):
    t = tmp_path / "space.j2"
    t.write_text("Question: {{ text }}\nAnswer: ", encoding="utf-8")
    with pytest.raises(PromptTemplateError, match="must end with the answer header"):
        build_prompt(en_single(), family="alpaca", mode="loglik", template_file=t)
    # generate mode may end with a newline (the response header line)
    t.write_text("Question: {{ text }}\nResponse:\n", encoding="utf-8")
    assert build_prompt(en_single(), family="alpaca", mode="generate", template_file=t).text.endswith("Response:\n")


def test_chat_family_cannot_be_templated():
    with pytest.raises(ValueError, match="needs a text family"):
        build_prompt(ja_single(), family="chat", mode="generate", template_file=EXAMPLE)


def test_sft_example_with_template_matches_built_in():
    a = sft_example(ja_select2(), family="alpaca")
    b = sft_example(ja_select2(), family="alpaca", template_file=EXAMPLE)
    assert a == b


DOCS_EXAMPLE = """{% for s in shots %}
Q: {{ s.text }}
{% for line in s.choice_lines %}
{{ line }}
{% endfor %}
Answer: {{ s.answer }}

{% endfor %}
Q: {{ text }}
{% if n_select > 1 %}
(Select {{ n_select }}.)
{% endif %}
{% for line in choice_lines %}
{{ line }}
{% endfor %}
Answer:{{ "" -}}
"""


def test_the_example_in_the_docs(tmp_path):
    # the same text as the example in docs/prompts.md
    docs = (Path(__file__).resolve().parents[2] / "docs" / "prompts.md").read_text(encoding="utf-8")
    assert DOCS_EXAMPLE in docs
    t = tmp_path / "docs.j2"
    t.write_text(DOCS_EXAMPLE, encoding="utf-8")
    p = build_prompt(en_select2(), family="terse", mode="letter", shots=[en_single()], template_file=t)
    assert p.text == (
        "Q: A 30-year-old woman has fever and neck stiffness. Which test should be done first?\n"
        "a. Lumbar puncture\nb. Blood culture\nc. Head CT\nd. Chest X-ray\n"
        "Answer: b\n"
        "\n"
        "Q: Which two drugs are loop diuretics?\n"
        "(Select 2.)\n"
        "a. Furosemide\nb. Spironolactone\nc. Bumetanide\nd. Amiloride\n"
        "Answer:"
    )
