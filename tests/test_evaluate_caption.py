"""Caption metrics equal pycocoevalcap's own, perfect captions score 1, and Java is optional."""

from __future__ import annotations

import pytest

pytest.importorskip("pycocoevalcap")

from rsgpt4v.evaluate import metrics_caption
from rsgpt4v.evaluate.metrics_caption import caption_scores, java_problem

REFERENCES = {
    "1": ["Many planes are parked next to a long building in an airport.", "Planes at an airport."],
    "2": ["Green trees surround a small lake.", "A lake with trees around it ."],
    "3": ["A dense residential area with many houses and roads."],
}
PREDICTIONS = {
    "1": "many planes parked near a building at an airport",
    "2": "a lake surrounded by trees",
    "3": "",
}
needs_java = pytest.mark.skipif(java_problem() is not None, reason="java is not installed")


def _pycocoevalcap_scores() -> dict[str, float]:
    """The COCO caption evaluation run by hand, as its own example script does."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in REFERENCES.items()})
    res = tokenizer.tokenize({k: [{"caption": v}] for k, v in PREDICTIONS.items()})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = {f"BLEU-{i + 1}": b for i, b in enumerate(bleu)}
    # pycocoevalcap's Meteor class; the instance our wrapper keeps, so one Java start (~10 s)
    meteor = metrics_caption._meteor()
    assert type(meteor) is Meteor
    scores["METEOR"] = meteor.compute_score(gts, res)[0]
    scores["ROUGE-L"] = Rouge().compute_score(gts, res)[0]
    scores["CIDEr"] = Cider().compute_score(gts, res)[0]
    return scores


@needs_java
def test_scores_equal_pycocoevalcaps_own_on_the_same_inputs() -> None:
    ours = caption_scores(REFERENCES, PREDICTIONS)
    assert ours.tokenizer == metrics_caption.PTB
    assert not ours.unavailable
    expected = _pycocoevalcap_scores()
    assert set(ours.scores) == set(metrics_caption.METRICS)
    for metric, value in expected.items():
        assert ours.scores[metric] == pytest.approx(value, abs=1e-9), metric
    assert 0 < ours.scores["BLEU-1"] < 1


@needs_java
def test_perfect_captions_score_one() -> None:
    perfect = {k: v[0] for k, v in REFERENCES.items()}
    scores = caption_scores(REFERENCES, perfect, meteor=False).scores
    for metric in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L"):
        assert scores[metric] == pytest.approx(1.0, abs=1e-6), metric
    assert scores["CIDEr"] > caption_scores(REFERENCES, PREDICTIONS, meteor=False).scores["CIDEr"]


def test_without_java_meteor_is_unavailable_and_the_rest_still_scores(monkeypatch) -> None:
    monkeypatch.setattr(metrics_caption.shutil, "which", lambda name: None)
    result = caption_scores(REFERENCES, {k: v[0] for k, v in REFERENCES.items()})
    assert "METEOR" not in result.scores
    assert "java not found" in result.unavailable["METEOR"]
    assert result.tokenizer == metrics_caption.SIMPLE
    assert result.scores["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert result.as_dict()["unavailable"] == result.unavailable


def test_ids_must_match() -> None:
    from rsgpt4v.errors import RsgptError

    with pytest.raises(RsgptError, match="differ in their ids"):
        caption_scores(REFERENCES, {"1": "x"})
