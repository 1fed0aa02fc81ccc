"""Write the bundled synthetic DOTA-format sample (5 GeoTIFF scenes, labels, captions) to a folder.

    python examples/make_sample.py OUT_DIR [--seed N] [--size PX]

The same folder is what ``rsgpt4v demo`` and the README quick start use; convert it with the DOTA
converter like any DOTA download.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rsgpt4v.sample import make_sample


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="folder for images/, labelTxt/, captions.json")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same files")
    parser.add_argument("--size", type=int, default=256, help="scene size in pixels (at least 192)")
    args = parser.parse_args(argv)

    out_dir = make_sample(args.out_dir, seed=args.seed, size=args.size)
    captions = json.loads((out_dir / "captions.json").read_text(encoding="utf-8"))
    for image, texts in captions.items():
        label = out_dir / "labelTxt" / f"{Path(image).stem}.txt"
        objects = len(label.read_bytes().splitlines()) - 2
        print(f"{out_dir / image}  {label}  ({objects} objects)")
        print(f"    {texts[0]}")
    print(f"{out_dir / 'captions.json'}")


if __name__ == "__main__":
    main()
