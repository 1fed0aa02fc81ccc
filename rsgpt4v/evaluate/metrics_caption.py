"""Captioning: BLEU-1…4, METEOR, ROUGE-L and CIDEr, computed by pycocoevalcap itself.

Scores are the COCO caption evaluation's own (the ``eval`` extra installs ``pycocoevalcap``), so
they compare with published numbers: captions are tokenised by its ``PTBTokenizer`` (Stanford
CoreNLP, run with Java), then scored by ``Bleu(4)``, ``Meteor``, ``Rouge`` and ``Cider``. SPICE is
left out: it downloads Stanford CoreNLP models at first use.

Java is needed by the tokenizer and METEOR. Without it (or when it fails) METEOR is reported
unavailable with the reason, and captions are tokenised by :func:`simple_tokenize` (lower case,
words split off punctuation, PTB punctuation dropped), which is close to but not the same as PTB:
the result records which tokenizer ran, so such numbers are not mistaken for official ones.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from rsgpt4v.errors import RsgptError

METRICS = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
PTB = "ptb"
SIMPLE = "simple (java missing: not the official PTB tokenization)"
_WORD = re.compile(r"[a-z0-9]+(?:['.][a-z0-9]+)*")


@dataclass
class CaptionScores:
    """Corpus scores by metric name, why any metric is missing, and the tokenizer used."""

    scores: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    tokenizer: str = PTB
    n: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            **self.scores,
            "n": self.n,
            "tokenizer": self.tokenizer,
            "unavailable": self.unavailable,
        }


def java_problem() -> str | None:
    """Why Java cannot run (None when ``java -version`` works)."""
    if shutil.which("java") is None:
        return "java not found on PATH (install a headless JRE, e.g. default-jre-headless)"
    try:
        subprocess.run(["java", "-version"], capture_output=True, timeout=60, check=True)
    except (OSError, subprocess.SubprocessError) as error:
        return f"java does not run: {error}"
    return None


def simple_tokenize(text: str) -> str:
    """Lower-cased words without punctuation, joined by spaces (the no-Java fallback)."""
    return " ".join(_WORD.findall(text.lower()))


def _scorers():
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.rouge.rouge import Rouge
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    except ImportError:
        raise RsgptError(
            "caption metrics need pycocoevalcap: pip install 'rsgpt4v[eval]'"
        ) from None
    return Bleu, Cider, Rouge, PTBTokenizer


def tokenize(captions: Mapping[str, Sequence[str]], java: bool) -> tuple[dict[str, list[str]], str]:
    """Tokenised captions by id, and the tokenizer that ran (PTB with Java, else simple)."""
    *_, tokenizer_class = _scorers()
    if java:
        # one caption per line for the tokenizer: any line break inside one would shift the rest
        entries = {
            key: [{"caption": " ".join(text.split())} for text in texts]
            for key, texts in captions.items()
        }
        return tokenizer_class().tokenize(entries), PTB
    return {key: [simple_tokenize(t) for t in texts] for key, texts in captions.items()}, SIMPLE


def caption_scores(
    references: Mapping[str, Sequence[str]], predictions: Mapping[str, str], *, meteor: bool = True
) -> CaptionScores:
    """Corpus scores of one prediction per id against that id's reference captions.

    ``meteor=False`` skips METEOR (its Java start-up loads a paraphrase table, ~10 s).
    """
    if references.keys() != predictions.keys():
        missing = sorted(set(references) ^ set(predictions))[:3]
        raise RsgptError(f"references and predictions differ in their ids, e.g. {missing}")
    result = CaptionScores(n=len(references))
    if not references:
        return result
    bleu_class, cider_class, rouge_class, _ = _scorers()
    problem = java_problem()
    # one PTB run for both sides: the tokenizer joins every caption into one temporary file
    both = {f"r{key}": list(texts) for key, texts in references.items()}
    both |= {f"p{key}": [text] for key, text in predictions.items()}
    tokens, result.tokenizer = tokenize(both, java=problem is None)
    gts = {key: tokens[f"r{key}"] for key in references}
    res = {key: tokens[f"p{key}"] for key in predictions}
    bleu, _ = bleu_class(4).compute_score(gts, res, verbose=0)
    result.scores.update({f"BLEU-{i + 1}": float(b) for i, b in enumerate(bleu)})
    if not meteor:
        result.unavailable["METEOR"] = "skipped on request"
    elif problem is None:
        try:
            result.scores["METEOR"] = meteor_score(gts, res)
        except (OSError, ValueError) as error:
            result.unavailable["METEOR"] = f"METEOR failed: {error}"
    else:
        result.unavailable["METEOR"] = problem
    result.scores["ROUGE-L"] = float(rouge_class().compute_score(gts, res)[0])
    result.scores["CIDEr"] = float(cider_class().compute_score(gts, res)[0])
    return result


def meteor_score(gts: dict[str, list[str]], res: dict[str, list[str]]) -> float:
    """pycocoevalcap's METEOR, from one Java process per Python process.

    Starting METEOR loads its paraphrase table (~10 s), so the process is kept for the next
    caption task of the run; pycocoevalcap closes it when the interpreter exits.
    """
    try:
        return float(_meteor().compute_score(gts, res)[0])
    except (OSError, ValueError):
        _meteor.cache_clear()  # a broken process is not reused
        raise


@cache
def _meteor() -> Any:
    from pycocoevalcap.meteor.meteor import Meteor

    return Meteor()
