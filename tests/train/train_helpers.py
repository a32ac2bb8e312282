"""Shared by the training tests: QA pairs, and a callback that records what the model is fed."""

from __future__ import annotations

from transformers import TrainerCallback

QA = [
    ("心筋梗塞の第一選択の再灌流療法は何か。", "経皮的冠動脈インターベンション"),
    ("糖尿病の三大合併症を答えよ。", "網膜症、腎症、神経障害"),
    ("ワルファリンの効果をみる検査は何か。", "PT-INR"),
    ("Which vitamin deficiency causes scurvy?", "Vitamin C"),
    ("甲状腺機能亢進症で上昇するホルモンはどれか。", "遊離サイロキシン"),
    ("肺塞栓症の確定診断に有用な検査は何か。", "造影CT"),
    ("高カリウム血症の心電図所見を一つ答えよ。", "テント状T波"),
    ("What is the antidote for heparin?", "Protamine sulfate"),
    ("鉄欠乏性貧血で低下する検査値を一つ答えよ。", "血清フェリチン"),
    ("急性膵炎で上昇する酵素を一つ答えよ。", "リパーゼ"),
    ("気管支喘息発作の第一選択薬は何か。", "短時間作用型β2刺激薬の吸入"),
    ("What is the first-line drug for anaphylaxis?", "Intramuscular adrenaline"),
]


class CaptureBatches(TrainerCallback):
    """Record every batch the model's forward receives during training, and the per-token log-probs it returns."""

    def __init__(self):
        self.inputs: list[dict] = []
        self.log_probs: list = []
        self.model = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.model = model

        def pre(module, a, kw):
            self.inputs.append({k: v.detach().clone() for k, v in kw.items() if hasattr(v, "detach")})

        def post(module, a, kw, output):
            lp = getattr(output, "log_probs", None)
            self.log_probs.append(None if lp is None else lp.detach().clone())

        model.register_forward_pre_hook(pre, with_kwargs=True)
        model.register_forward_hook(post, with_kwargs=True)
