"""Hand-built questions shared by the prompt tests (no data files, no model)."""

from __future__ import annotations

from jmedllm.schema import Question


def ja_single() -> Question:
    return Question(
        id="igakuqa-116A1",
        benchmark="igakuqa",
        text="睡眠時無呼吸症候群による高血圧について、正しくないのはどれか。",
        choices=(
            "夜間高血圧となることが多い。",
            "肥満患者では減量を推奨する。",
            "α遮断薬が第一選択薬である。",
            "家庭血圧では早朝に高血圧となることが多い。",
            "持続的気道陽圧法〈CPAP〉で降圧が期待される。",
        ),
        answer={2},
        n_select=1,
        language="ja",
        meta={"kinki": (), "points": 1},
    )


def ja_select2() -> Question:
    return Question(
        id="igakuqa-116B9",
        benchmark="igakuqa",
        text="腎性貧血の治療に用いるのはどれか。2つ選べ。",
        choices=("鉄剤", "葉酸", "エリスロポエチン製剤", "HIF-PH阻害薬", "ビタミンB12"),
        answer={2, 3},
        n_select=2,
        language="ja",
    )


def en_single() -> Question:
    return Question(
        id="medqa-1",
        benchmark="medqa",
        text="A 30-year-old woman has fever and neck stiffness. Which test should be done first?",
        choices=("Lumbar puncture", "Blood culture", "Head CT", "Chest X-ray"),
        answer={1},
        n_select=1,
        language="en",
    )


def en_context() -> Question:
    return Question(
        id="pubmedqa-42",
        benchmark="pubmedqa",
        text="Does early mobilisation shorten hospital stay?",
        choices=("yes", "no", "maybe"),
        answer={0},
        n_select=1,
        language="en",
        context="Patients mobilised within 24 h left hospital 1.5 days earlier.",
    )


def en_select2() -> Question:
    return Question(
        id="medmcqa-7",
        benchmark="medmcqa",
        text="Which two drugs are loop diuretics?",
        choices=("Furosemide", "Spironolactone", "Bumetanide", "Amiloride"),
        answer={0, 2},
        n_select=2,
        language="en",
    )


def ja_numeric() -> Question:
    return Question(
        id="igakuqa-116B50",
        benchmark="igakuqa",
        text="1日尿蛋白量（g/日）を求めよ。解答：①.②g/日",
        choices=(),
        answer=frozenset(),
        n_select=0,
        language="ja",
        numeric_answer="2.1",
    )


def ja_explained() -> Question:
    return Question(
        id="yakugakuqa-109A001",
        benchmark="yakugakuqa",
        text="永久双極子モーメントをもつ分子はどれか。1つ選べ。",
        choices=("ベンゼン", "メタン", "二酸化炭素", "水", "四塩化炭素"),
        answer={3},
        n_select=1,
        language="ja",
        explanation="正電荷と負電荷の重心が一致しない極性分子は水である。",
    )


def with_choices(n: int, qid: str = "many") -> Question:
    return Question(
        id=qid,
        benchmark="igakuqa",
        text=f"{n}択の問題。",
        choices=tuple(f"選択肢{i}" for i in range(n)),
        answer={n - 1},
        n_select=1,
        language="ja",
    )
