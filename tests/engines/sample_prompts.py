"""Prompts of different lengths and scripts shared by the CPU generation tests (ragged batches)."""

PROMPTS = [
    "45歳の男性。発熱と咳嗽を主訴に来院した。3日前から38℃台の発熱が続く。最も考えられる診断はどれか。答え：",
    "The patient is a 45-year-old man with fever and cough for three days.",
    "治療として",
    "患者は",
    "Which of the following is the most appropriate next step?",
]
