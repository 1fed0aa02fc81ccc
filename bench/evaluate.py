"""Benchmark: evaluation speed — scoring throughput per metric family, and batched generation.

Scoring: synthetic predictions (RSVQA-style VQA with numbers in words, grounding answers with
several boxes in the llava style, counting, classification) scored by ``score_predictions``;
items/s per family, against plain exact string matching of the same answers (the ratio is what
normalisation, box parsing and one-to-one box pairing cost).

Generation: a tiny random-weight LLaVA (rsgpt4v.finetune.tiny) answers the same questions one
at a time and in left-padded batches; questions/s and the speed-up of batching (answers are
checked identical). Times on a CPU say little about a GPU; the ratio is the point.

    python bench/evaluate.py [--items 20000] [--questions 32] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

WORDS = ("zero", "one", "two", "three", "twelve", "twenty-one", "one hundred and five")


def synthetic_predictions(count: int, seed: int = 0) -> dict[str, list]:
    """Predictions of each family, half of them right, written the way models write them."""
    from rsgpt4v.boxfmt import render_box
    from rsgpt4v.evaluate.predictions import Prediction

    rng = random.Random(seed)
    out: dict[str, list] = {"vqa": [], "grounding": [], "counting": [], "classification": []}

    def add(family: str, index: int, prediction: str, **fields: object) -> None:
        fields.setdefault("references", ["r"])
        out[family].append(
            Prediction(
                id=f"{family}-{index}",
                record_id="x/test/1",
                image="1.png",
                image_size=[512, 512],
                task=family,
                metric=family,
                question="q",
                prediction=prediction,
                **fields,
            )
        )

    for i in range(count):
        n = rng.randrange(0, 1500)
        right = rng.random() < 0.5
        kind = rng.choice(("presence", "count", "area"))
        ref, said = {
            "presence": ("yes", "Yes, there is." if right else "No."),
            "count": (str(n), f"There are {n if right else n + 1}."),
            "area": (f"{n}m2", f"{n if right else n * 2} square meters"),
        }[kind]
        add("vqa", i, said, question_type=kind, references=[ref])
        corners = [(rng.uniform(0, 400), rng.uniform(0, 400)) for _ in range(rng.randint(1, 4))]
        boxes = [[x, y, x + rng.uniform(8, 100), y + rng.uniform(8, 100)] for x, y in corners]
        text = ", ".join(render_box("llava", b, 512, 512) for b in boxes[:: 1 if right else 2])
        add("grounding", i, f"They are at {text}.", boxes=boxes)
        add("counting", i, f"I see {rng.choice(WORDS)} ships.", count=n % 30)
        label = rng.choice(("forest", "dense residential", "airport", "harbor"))
        add("classification", i, f"This is a {label} scene.", label=label)
    return out


def bench_scoring(count: int) -> None:
    from rsgpt4v.evaluate.scoring import score_predictions

    print(f"scoring {count} predictions per family")
    for family, predictions in synthetic_predictions(count).items():
        start = time.perf_counter()
        sum(p.prediction == p.references[0] for p in predictions)
        baseline = time.perf_counter() - start
        start = time.perf_counter()
        score_predictions(predictions)
        took = time.perf_counter() - start
        print(
            f"  {family:15s} {count / took:10.0f} items/s   exact-match baseline "
            f"{count / baseline:12.0f} items/s   cost ratio {took / baseline:8.1f}x"
        )


def bench_generation(questions: int, batch_size: int) -> None:
    from PIL import Image

    from rsgpt4v.evaluate.predict import GenerationSettings, write_predictions
    from rsgpt4v.evaluate.references import EvalItem
    from rsgpt4v.finetune.tiny import save_tiny_model

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        model = save_tiny_model(root / "tiny", "llava")
        Image.new("RGB", (64, 48), (30, 120, 200)).save(root / "a.png")
        question = "How many ships are there?"
        items = [
            EvalItem(
                id=f"q{i}",
                record_id="x/test/a",
                image="a.png",
                image_size=[64, 48],
                task="vqa",
                metric="vqa",
                question=question + " Look closely." * (i % 5),  # prompts of several lengths
                references=["3"],
            )
            for i in range(questions)
        ]
        answers, rates = {}, {}
        for size in (1, batch_size):
            out = root / f"b{size}.jsonl"
            settings = GenerationSettings(batch_size=size, max_new_tokens=16)
            start = time.perf_counter()
            write_predictions(items, out, model_dir=model, image_root=root, settings=settings)
            rates[size] = questions / (time.perf_counter() - start)
            answers[size] = out.read_text()
        print(f"generation, tiny LLaVA, {questions} questions, 16 new tokens")
        print(f"  batch 1: {rates[1]:.1f} questions/s; batch {batch_size}: "
              f"{rates[batch_size]:.1f} questions/s; speed-up {rates[batch_size] / rates[1]:.2f}x; "
              f"same answers: {answers[1] == answers[batch_size]}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    bench_scoring(args.items)
    bench_generation(args.questions, args.batch_size)


if __name__ == "__main__":
    main()
