"""Scene classification: UC Merced Land Use, AID and NWPU-RESISC45 (one folder per class).

Dataset
    Aerial scenes with one land-use label each: UC Merced (Yang & Newsam, 21 classes x 100
    images of 256x256 px, 1 ft), AID (Xia et al., 30 classes, 10,000 images of 600x600 px) and
    NWPU-RESISC45 (Cheng et al., 45 classes x 700 images of 256x256 px).
Layout
    ``ROOT/UCMerced_LandUse/Images/<class>/<class>NN.tif``, ``ROOT/AID/<Class>/<class>_N.jpg``,
    ``ROOT/NWPU-RESISC45/<class>/<class>_NNN.jpg``; ROOT may also be the folder holding the
    class folders. The class folder is the label, written exactly as on disk.
Splits
    None are official. Split files give them: torchgeo's ``uc_merced-train.txt`` /
    ``resisc45-val.txt`` … found in ROOT, or every ``*.txt`` in ``-O splits=DIR`` (relative to
    ROOT, or absolute), the split named by the file (``train.txt`` → ``train``; a
    ``uc_merced-`` style prefix is dropped). One image per line: a file name
    (``agricultural00.tif``) or a path ending in ``<class>/<file>``; blank lines and CRLF are
    fine. Without split files every image is in split ``all``.
Quirks
    Class folder spellings differ between datasets (``denseresidential``, ``DenseResidential``,
    ``dense_residential``; some RESISC45 copies use spaces) and are kept as written; a folder
    outside the known class list is kept with a warning. Sizes are read from each file (a few
    UC Merced images are not 256x256). Files are not renamed: ids keep the class folder, so
    they stay unique even where two classes hold the same file name.
Citation
    Yang & Newsam, "Bag-Of-Visual-Words and Spatial Extensions for Land-Use Classification",
    ACM SIGSPATIAL 2010; Xia et al., "AID: A Benchmark Data Set for Performance Evaluation of
    Aerial Scene Classification", TGRS 2017; Cheng et al., "Remote Sensing Image Scene
    Classification: Benchmark and State of the Art", Proc. IEEE 2017.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import ClassVar

from rsgpt4v.converters.base import Converter, image_info
from rsgpt4v.errors import InputError
from rsgpt4v.schema import Record

IMAGE_SUFFIXES = (".tif", ".tiff", ".jpg", ".jpeg", ".png", ".bmp")
NO_SPLIT = "all"

UCM_CLASSES = (
    "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral",
    "denseresidential", "forest", "freeway", "golfcourse", "harbor", "intersection",
    "mediumresidential", "mobilehomepark", "overpass", "parkinglot", "river", "runway",
    "sparseresidential", "storagetanks", "tenniscourt",
)  # fmt: skip
AID_CLASSES = (
    "Airport", "BareLand", "BaseballField", "Beach", "Bridge", "Center", "Church",
    "Commercial", "DenseResidential", "Desert", "Farmland", "Forest", "Industrial", "Meadow",
    "MediumResidential", "Mountain", "Park", "Parking", "Playground", "Pond", "Port",
    "RailwayStation", "Resort", "River", "School", "SparseResidential", "Square", "Stadium",
    "StorageTanks", "Viaduct",
)  # fmt: skip
RESISC45_CLASSES = (
    "airplane", "airport", "baseball_diamond", "basketball_court", "beach", "bridge",
    "chaparral", "church", "circular_farmland", "cloud", "commercial_area",
    "dense_residential", "desert", "forest", "freeway", "golf_course", "ground_track_field",
    "harbor", "industrial_area", "intersection", "island", "lake", "meadow",
    "medium_residential", "mobile_home_park", "mountain", "overpass", "palace", "parking_lot",
    "railway", "railway_station", "rectangular_farmland", "river", "roundabout", "runway",
    "sea_ice", "ship", "snowberg", "sparse_residential", "stadium", "storage_tank",
    "tennis_court", "terrace", "thermal_power_station", "wetland",
)  # fmt: skip


class SceneClassificationConverter(Converter):
    """Class folders of images → one record per image, the folder name as its label."""

    SPLITS = ("train", "val", "test")  # torchgeo's; any other split file name works too
    IMAGE_FOLDERS: ClassVar[tuple[str, ...]]  # where the class folders usually are; else ROOT
    SPLIT_FILE_PREFIX: ClassVar[str]  # torchgeo's split file names: PREFIX-train.txt
    OPTIONS: ClassVar[dict[str, str]] = {
        "splits": "folder of split files NAME.txt (one image file name or class/file per line), "
        "relative to ROOT or absolute; default: PREFIX-NAME.txt files in ROOT (torchgeo)"
    }

    # -- layout -------------------------------------------------------------------------------
    def image_folder(self) -> Path:
        for name in self.IMAGE_FOLDERS:
            if (self.root / name).is_dir():
                return self.root / name
        return self.root

    def splits_folder(self) -> Path | None:
        if "splits" not in self.options:
            return None
        folder = self.root / self.options["splits"]  # an absolute option replaces the root
        if not folder.is_dir():
            raise InputError("option splits must name a folder", value=self.options["splits"])
        return folder

    def split_files(self) -> dict[str, Path]:
        """Split name → split file: every ``*.txt`` of ``-O splits``, or torchgeo's in ROOT."""
        folder = self.splits_folder()
        prefix = f"{self.SPLIT_FILE_PREFIX}-"
        paths = sorted(folder.glob("*.txt")) if folder else sorted(self.root.glob(f"{prefix}*.txt"))
        if folder and not paths:
            raise InputError("no *.txt split files in the splits folder", file=folder)
        files = {path.stem.removeprefix(prefix): path for path in paths}
        order = {name: index for index, name in enumerate(self.SPLITS)}  # train before test
        return dict(sorted(files.items(), key=lambda item: (order.get(item[0], len(order)), item)))

    def _image_files(self) -> list[Path]:
        """Every file below the image folder except the split files and the splits folder."""
        skip_folder = self.splits_folder()
        skip_folder = skip_folder.resolve() if skip_folder else None
        skip_files = {path.resolve() for path in self.split_files().values()}
        return [
            path
            for path in sorted(self.image_folder().rglob("*"))
            if path.is_file()
            and path.resolve() not in skip_files
            and not (skip_folder and path.resolve().is_relative_to(skip_folder))
        ]

    def estimate_count(self) -> int | None:
        return sum(p.suffix.lower() in IMAGE_SUFFIXES for p in self._image_files())

    # -- records ------------------------------------------------------------------------------
    def records(self) -> Iterator[Record]:
        images = self._images()
        assigned = self._assign_splits(images)
        for relative, path in images.items():
            split = assigned.get(relative) if assigned is not None else NO_SPLIT
            if split is None or (self.split is not None and split != self.split):
                continue
            facts = self.image_facts(path)
            if facts is None:
                continue
            label = relative.split("/", 1)[0]
            yield Record(
                id=f"{self.NAME}/{split}/{PurePosixPath(relative).with_suffix('')}",
                dataset=self.NAME,
                split=split,
                image=image_info(self.relative_path(path), facts),
                label=label,
                meta={"labelled": False},  # a scene label, no object labels
            )

    def _images(self) -> dict[str, Path]:
        """Images by their path below the image folder (``class/file``), in sorted order."""
        folder = self.image_folder()
        images: dict[str, Path] = {}
        stems: dict[str, str] = {}
        warned: set[str] = set()
        for path in self._image_files():
            relative = path.relative_to(folder).as_posix()
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                self.log.warn("not an image file (by its suffix); skipped", path)
            elif "/" not in relative:
                self.log.reject("image is not inside a class folder", path)
            elif (stem := str(PurePosixPath(relative).with_suffix(""))) in stems:
                self.log.reject(f"two images share the id {stem}", path, value=stems[stem])
            else:
                stems[stem] = relative
                images[relative] = path
                label = relative.split("/", 1)[0]
                if self.CLASSES and label not in self.CLASSES and label not in warned:
                    warned.add(label)
                    reason = f"class folder {label!r} is not in the {self.NAME} class list; kept"
                    self.log.warn(reason, folder / label)
        if not images:
            raise InputError(f"no images in class folders; expected {self.LAYOUT}", file=folder)
        return images

    def _assign_splits(self, images: dict[str, Path]) -> dict[str, str] | None:
        """Image → split from the split files; None when there are none (split ``all``)."""
        files = self.split_files()
        if not files:
            if self.split is not None:
                raise InputError(
                    f"{self.NAME} has no official split, so --split {self.split} needs split "
                    f"files: -O splits=DIR with train.txt, val.txt, test.txt (one image file "
                    f"name per line) or torchgeo's {self.SPLIT_FILE_PREFIX}-train.txt … in ROOT; "
                    f"without --split every image is in split '{NO_SPLIT}'",
                    file=self.root,
                )
            return None
        if self.split is not None and self.split not in files:
            raise InputError(
                f"no split file for split {self.split!r}; split files: {', '.join(files)}",
                file=next(iter(files.values())).parent,
            )
        by_name: dict[str, list[str]] = defaultdict(list)
        for relative in images:
            by_name[PurePosixPath(relative).name].append(relative)
        assigned: dict[str, str] = {}
        for split, file in files.items():
            for number, name in self._split_file_lines(file):
                relative = self._match(name, by_name, file, number)
                if relative is None:
                    continue
                if relative in assigned:
                    reason = f"image is already in split {assigned[relative]!r}"
                    self.log.reject(reason, file, number, name)
                    continue
                assigned[relative] = split
        unlisted = len(images) - len(assigned)
        if unlisted:
            self.log.count("images in no split file (left out)", unlisted)
            self.log.warn(f"{unlisted} images are in no split file and are left out", self.root)
        return assigned

    @staticmethod
    def _split_file_lines(file: Path) -> Iterator[tuple[int, str]]:
        """(line number, image name) of each non-blank line; CRLF and Windows separators ok."""
        try:
            text = file.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise InputError(f"split file is not UTF-8 text ({error.reason})", file=file) from None
        for number, line in enumerate(text.splitlines(), start=1):
            if name := line.strip().replace("\\", "/"):
                yield number, name

    def _match(
        self, name: str, by_name: dict[str, list[str]], file: Path, number: int
    ) -> str | None:
        """The one image a split file line names: by file name, or by a path ending in it."""
        matches = [
            relative
            for relative in by_name.get(PurePosixPath(name).name, [])
            if "/" not in name or f"/{name}".endswith(f"/{relative}")
        ]
        if len(matches) == 1:
            return matches[0]
        reason = (
            f"split file line names {len(matches)} images ({', '.join(matches)}); "
            "write its class folder too"
            if matches
            else "split file line names no image in a class folder"
        )
        self.log.reject(reason, file, number, name)
        return None


class UcMercedConverter(SceneClassificationConverter):
    NAME = "ucm"
    DESCRIPTION = "UC Merced Land Use: 21 classes x 100 TIFFs; the class folder is the label."
    LAYOUT = "ROOT/UCMerced_LandUse/Images/<class>/<class>NN.tif (or ROOT/Images/, ROOT/<class>/)"
    CLASSES = UCM_CLASSES
    IMAGE_FOLDERS = ("UCMerced_LandUse/Images", "Images")
    SPLIT_FILE_PREFIX = "uc_merced"
    CITATION = (
        "Yang & Newsam, Bag-Of-Visual-Words and Spatial Extensions for Land-Use "
        "Classification, ACM SIGSPATIAL 2010"
    )


class AidConverter(SceneClassificationConverter):
    NAME = "aid"
    DESCRIPTION = "AID: 30 scene classes, 10,000 JPEGs; the CamelCase class folder is the label."
    LAYOUT = "ROOT/AID/<Class>/<class>_N.jpg (or ROOT/<Class>/)"
    CLASSES = AID_CLASSES
    IMAGE_FOLDERS = ("AID",)
    SPLIT_FILE_PREFIX = "aid"
    CITATION = (
        "Xia et al., AID: A Benchmark Data Set for Performance Evaluation of Aerial Scene "
        "Classification, TGRS 2017"
    )


class Resisc45Converter(SceneClassificationConverter):
    NAME = "resisc45"
    DESCRIPTION = "NWPU-RESISC45: 45 classes x 700 JPEGs; the class folder is the label."
    LAYOUT = "ROOT/NWPU-RESISC45/<class>/<class>_NNN.jpg (or ROOT/<class>/)"
    CLASSES = RESISC45_CLASSES
    IMAGE_FOLDERS = ("NWPU-RESISC45",)
    SPLIT_FILE_PREFIX = "resisc45"
    CITATION = (
        "Cheng et al., Remote Sensing Image Scene Classification: Benchmark and State of the "
        "Art, Proc. IEEE 2017"
    )
