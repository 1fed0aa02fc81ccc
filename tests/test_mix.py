"""Mixing (``instruct --mix``): weights keep a share deterministically, caps bound counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.errors import InputError
from rsgpt4v.instruct import RULE_TASKS, generate_instructions
from rsgpt4v.instruct.mix import MixConfig, Mixer, load_mix
from rsgpt4v.schema import ImageInfo, Instruction, Object, Record, read_jsonl, write_jsonl


def _records(count: int, dataset: str = "toy", start: int = 0) -> list[Record]:
    """Records with one caption and one ship each: one brief_caption + one counting each."""
    return [
        Record(
            id=f"{dataset}/train/{i:05d}",
            dataset=dataset,
            split="train",
            image=ImageInfo(path=f"images/{i:05d}.png", width=64, height=64),
            objects=[Object(id=0, category="ship", bbox=[1, 1, 5, 5])],
            captions=[f"Scene {i}."],
        )
        for i in range(start, start + count)
    ]


def _mix_file(tmp_path: Path, text: str, name: str = "mix.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _instruct(tmp_path: Path, records: list[Record], mix, seed: int = 0, name: str = "r"):
    source = tmp_path / f"{name}.jsonl"
    write_jsonl(source, records)
    summary = generate_instructions(
        source, tmp_path / f"{name}.out.jsonl", tasks="brief_caption,counting", mix=mix, seed=seed
    )
    return summary, list(read_jsonl(summary.output, Instruction))


def _kept_ids(config: MixConfig, seed: int, count: int = 2000) -> list[str]:
    mixer = Mixer(config, seed)
    made = (_instruction(f"toy/train/{i}#counting-0", "counting") for i in range(count))
    return [copy.id for instruction in made for copy in mixer.apply(instruction, "toy")]


def test_weight_half_keeps_about_half_deterministically() -> None:
    config = MixConfig.model_validate({"tasks": {"counting": {"weight": 0.5}}})
    kept = _kept_ids(config, seed=0)
    assert 800 <= len(kept) <= 1200  # 40 to 60 % of 2000
    assert _kept_ids(config, seed=0) == kept
    assert _kept_ids(config, seed=1) != kept


def test_mix_summary_counts_what_was_written(tmp_path: Path) -> None:
    mix = _mix_file(tmp_path, "tasks: {brief_caption: {weight: 0.5}}\n")
    summary, kept = _instruct(tmp_path, _records(200), mix)
    captions = [i for i in kept if i.task == "brief_caption"]
    assert summary.per_task == {"brief_caption": len(captions), "counting": 200}
    assert summary.mix.dropped == 200 - len(captions) and summary.mix.repeated == 0


def test_split_input_keeps_exactly_what_the_whole_keeps(tmp_path: Path) -> None:
    config = MixConfig.model_validate({"sources": {"toy": {"weight": 0.3}}})
    whole = _instruct(tmp_path, _records(600), config, name="whole")[1]
    first = _instruct(tmp_path, _records(250), config, name="first")[1]
    second = _instruct(tmp_path, _records(350, start=250), config, name="second")[1]
    assert first + second == whole and 0 < len(whole) < 1200


def test_weights_multiply_and_repeat_with_rep_ids() -> None:
    config = MixConfig.model_validate(
        {"sources": {"toy": {"weight": 2.0}}, "tasks": {"counting": {"weight": 1.25}}}
    )
    mixer = Mixer(config, seed=7)
    made = [
        copy
        for i in range(1000)
        for copy in mixer.apply(_instruction(f"toy/train/{i}#counting-0", "counting"), "toy")
    ]
    assert 2400 <= len(made) <= 2600  # 2.5 copies on average
    assert len({i.id for i in made}) == len(made)
    assert {i.id.rpartition("#")[2] for i in made} == {"counting-0", "rep-1", "rep-2"}
    assert mixer.stats.repeated == len(made) - 1000 and mixer.stats.dropped == 0


def _instruction(instruction_id: str, task: str) -> Instruction:
    return Instruction(
        id=instruction_id,
        record_id=instruction_id.split("#")[0],
        image="images/a.png",
        image_size=[64, 64],
        task=task,
        source={"generator": "rules", "template": f"{task}/v1"},
        messages=[{"role": "user", "content": "<image>\nQ"}, {"role": "assistant", "content": "A"}],
    )


def test_caps_keep_the_first_instructions_in_file_order(tmp_path: Path) -> None:
    records = _records(30, "a") + _records(30, "b")
    mix = _mix_file(
        tmp_path,
        "sources:\n  a: {cap: 12}\n  never-seen: {weight: 2}\ntasks:\n  counting: {cap: 20}\n",
    )
    summary, kept = _instruct(tmp_path, records, mix)
    from_a = [i for i in kept if i.record_id.startswith("a/")]
    assert len(from_a) == 12 and from_a == [i for i in kept[:12]]  # a's first 12, in order
    counting = [i for i in kept if i.task == "counting"]
    assert len(counting) == 20
    assert [i.record_id for i in counting] == sorted(i.record_id for i in counting)
    assert summary.instructions == len(kept) == 12 + 30 + (20 - 6)
    assert summary.mix.capped == 120 - len(kept)
    assert summary.mix.unused_sources == ["never-seen"]


def test_weight_zero_drops_a_task(tmp_path: Path) -> None:
    config = MixConfig.model_validate({"tasks": {"counting": {"weight": 0}}})
    summary, kept = _instruct(tmp_path, _records(20), config)
    assert {i.task for i in kept} == {"brief_caption"} and summary.mix.dropped == 20


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tasks: {counting: {wieght: 0.5}}\n", r"\[tasks.counting.wieght\]: unknown key 'wieght'"),
        ("source: {dota: {weight: 1}}\n", r"\[source\]: unknown key 'source'"),
        ("tasks: {countng: {weight: 0.5}}\n", r"\[tasks.countng\]: unknown task 'countng'"),
        ("sources: {dota: {weight: -1}}\n", r"\[sources.dota.weight\]: Input should be greater"),
        ("sources: {dota: {cap: many}}\n", r"\[sources.dota.cap\]"),
        ("sources: [dota\n", r"mix.yaml:2: not valid YAML"),
        ("- dota\n", r"Input should be a valid dictionary"),
    ],
)
def test_bad_mix_files_name_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = _mix_file(tmp_path, text)
    with pytest.raises(InputError, match=message) as error:
        load_mix(path, RULE_TASKS)
    assert str(path) in str(error.value)


def test_cli_instruct_with_mix(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    write_jsonl(records, _records(40))
    mix = _mix_file(tmp_path, "tasks:\n  counting: {weight: 0}\n  brief_caption: {weight: 2}\n")
    out = tmp_path / "out.jsonl"
    runner = CliRunner()
    result = runner.invoke(
        app, ["instruct", str(records), "-o", str(out), "--tasks", "brief_caption,counting",
              "--mix", str(mix)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "80 instructions (brief_caption 80) from 40 records" in result.output
    assert "mix: 40 dropped by weight, 0 by caps, 40 repeats added" in result.output
    bad = _mix_file(tmp_path, "tasks: {counting: {cap: 1, weigth: 2}}\n", "bad.yaml")
    result = runner.invoke(app, ["instruct", str(records), "-o", str(out), "--mix", str(bad)])
    assert result.exit_code == 2
    assert f"{bad} [tasks.counting.weigth]: unknown key 'weigth'" in result.output
