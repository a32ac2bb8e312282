"""Pure scoring: answer extraction, the studies' metrics, IgakuQA exam rules, statistics, aggregation.

No model and no I/O: given a ``Question`` and a model output, a verdict; given verdicts, a summary.

- ``extract``   free text -> chosen choices (a chain of named steps; "unparsed" is explicit)
- ``metrics``   exact match, Gestalt score / accuracy, set F1, log-likelihood and letter ranking
- ``numeric``   numeric-answer items (mark-sheet box templates)
- ``exam``      IgakuQA points, sections, official exceptions, kinki, pass lines
- ``stats``     bootstrap intervals, McNemar, paired bootstrap
- ``verdict``   ``score_generation`` / ``score_loglik`` / ``score_letter`` -> ``ItemVerdict``
- ``aggregate`` ``aggregate`` -> summary dict, ``summary_markdown``
"""

from jmedllm.scoring.aggregate import aggregate, summary_markdown
from jmedllm.scoring.exam_result import ExamResult, exam_result
from jmedllm.scoring.extract import Extraction, extract_choices, extract_number
from jmedllm.scoring.stats import bootstrap_mean_ci, mcnemar, paired_bootstrap
from jmedllm.scoring.verdict import ItemVerdict, score_generation, score_letter, score_loglik

__all__ = [
    "ExamResult",
    "Extraction",
    "ItemVerdict",
    "aggregate",
    "bootstrap_mean_ci",
    "exam_result",
    "extract_choices",
    "extract_number",
    "mcnemar",
    "paired_bootstrap",
    "score_generation",
    "score_letter",
    "score_loglik",
    "summary_markdown",
]
