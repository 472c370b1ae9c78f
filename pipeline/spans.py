"""Which span a run reads: the configured one, or the latest, found as ImportExampleGen finds
it; refused, naming the folder, wherever TFX would fail or read something else.

ImportExampleGen (`_get_target_span_version` in tfx/components/example_gen/utils.py) resolves
the span split by split: it globs `<root>/<split pattern>` with `{SPAN}` as `*` (or as the
configured span), reads each file's span from a regex made of the same path (`{SPAN}` as
`(?P<span>.*)`, the rest barely escaped), `int()`s it and keeps the highest; the splits' spans
must agree. Run against TFX 1.16, that gives:

- `span-2.bak/`, `span-3-old/` holding split files: TFX fails (`int('2.bak')`); empty: ignored;
- `span-02/` beside `span-2/`: both are span 2, each split read from the one listed first
  (train from span-02, eval from span-2); `span-07/` alone is read as span 7, which this
  pipeline (and `data.span: 7`) reads from `span-7/`;
- a file named `span-4`, an empty `span-3/`: skipped, an older span read instead;
- `span-3/` with train files and no eval files: TFX fails ("Latest span should be the same for
  each split");
- `$`, `^`, `{`, `|` in the data root: TFX's regex misses its own files and it fails.

Here a span is written in decimal without a leading zero (no `{SPAN:width}` in this
configuration); the latest span is the highest such name under the root, folder or not, and
it must be a folder with input files for every split.
"""

from __future__ import annotations

import os
import re

from components.data_check import DataCheckError
from components.data_check.gfile_glob import GLOB_CHARS, gfile_glob
from pipeline.config import PipelineConfig

_SPAN = "{SPAN}"
_SPAN_NUMBER = re.compile(r"0|[1-9][0-9]*")
# Regex characters TFX leaves unescaped in the path part of its span regex (`*`, `?` become
# classes that also match themselves; `.`, `+`, `(`, `)` and `\` are escaped).
_REGEX_CHARS = "^$|{}[]"


def split_patterns(cfg: PipelineConfig) -> dict[str, str]:
    """Split name -> file pattern relative to the data root, with ImportExampleGen's
    `{SPAN}` (what `pipeline.build` gives ImportExampleGen)."""
    d = cfg.data
    if d.splits.mode == "folders":
        return {name: f"{d.span_pattern}/{folder}/{d.file_pattern}"
                for name, folder in d.splits.folders.items()}
    return {"single_split": f"{d.span_pattern}/{d.file_pattern}"}


def _tfx_regex(glob_pattern: str) -> str:
    """TFX's `_glob_to_regex` (example_gen/utils.py), verbatim."""
    regex = glob_pattern.replace("\\", "\\\\").replace(".", r"\.").replace("+", r"\+")
    regex = regex.replace("*", r"[^\\/]*").replace("?", r"[^\\/]")
    return regex.replace("(", r"\(").replace(")", r"\)")


def check_data_root(data_root: str) -> None:
    """The data root is a folder TFX reads as itself; raises DataCheckError naming it."""
    if not os.path.exists(data_root):
        if os.path.islink(data_root):
            raise DataCheckError(f"data root {data_root} is a broken symbolic link (or a loop)")
        raise DataCheckError(f"data root {data_root} does not exist")
    if not os.path.isdir(data_root):
        raise DataCheckError(f"data root {data_root} is a file, not a directory")
    chars = [c for c in dict.fromkeys(data_root) if c in GLOB_CHARS]
    if chars and gfile_glob(data_root) != [data_root]:
        raise DataCheckError(
            f"data root {data_root}: {chars[0]!r} is a glob character, and TFX reads the data "
            "root as a pattern that does not match this folder alone; rename the folder"
        )


def _span_level(pattern: str) -> str:
    """The leading components of `pattern` up to the one holding `{SPAN}`."""
    parts = pattern.split("/")
    index = next(i for i, part in enumerate(parts) if _SPAN in part)
    return "/".join(parts[: index + 1])


def _root_regex_error(data_root: str) -> DataCheckError:
    chars = "".join(c for c in dict.fromkeys(data_root) if c in _REGEX_CHARS)
    what = f"{chars!r} in the path, which TFX leaves" if chars else "the path, which TFX makes"
    return DataCheckError(
        f"data root {data_root}: TFX cannot read span numbers under it: it matches file paths "
        f"against a regular expression made of {what} special; rename the folder"
    )


def _tfx_spans(
    data_root: str, patterns: dict[str, str], span: int | None
) -> dict[str, dict[int, list[str]]]:
    """Split -> span number -> its files, as TFX lists them; raises DataCheckError for a
    path TFX cannot read a span from, or reads a span from that this pipeline does not."""
    found: dict[str, dict[int, list[str]]] = {}
    for name, pattern in patterns.items():
        level_depth = _span_level(pattern).count("/") + 1
        fill = "*" if span is None else str(span)
        path_pattern = os.path.join(data_root, pattern)
        regex = _tfx_regex(path_pattern).replace(_SPAN, "(?P<span>.*)" if span is None
                                                 else str(span))
        spans = found[name] = {}
        for path in gfile_glob(path_pattern.replace(_SPAN, fill)):
            try:
                match = re.search(regex, path)
            except re.error:
                match = None
            if match is None:
                raise _root_regex_error(data_root)
            token = match.group("span") if span is None else str(span)
            rel = os.path.relpath(path, data_root)
            span_dir = os.path.join(data_root, *rel.split("/")[:level_depth])
            if not _SPAN_NUMBER.fullmatch(token):
                try:
                    number = int(token)
                except ValueError:
                    number = None
                if number is None or number < 0:
                    tfx = ("TFX fails on the input files in it" if number is None
                           else f"TFX reads it as span {number}")
                    raise DataCheckError(
                        f"{span_dir}: looks like a span folder, but {token!r} is not a span "
                        f"number ({tfx}: {rel}); rename it or move it out of the data root"
                    )
                raise DataCheckError(
                    f"{span_dir}: span {number} written {token!r}, which TFX reads as span "
                    f"{number} but this pipeline reads from "
                    f"{os.path.join(data_root, _span_level(pattern).replace(_SPAN, str(number)))};"
                    " rename or remove it"
                )
            spans.setdefault(int(token), []).append(path)
    return found


def _named_spans(data_root: str, level: str) -> list[int]:
    """Span numbers of the entries (folders or not) under `data_root` named as `level`."""
    regex = re.compile(re.escape(os.path.join(data_root, level)).replace(
        re.escape(_SPAN), "(.*)"))
    spans = []
    for path in gfile_glob(os.path.join(data_root, level.replace(_SPAN, "*"))):
        m = regex.fullmatch(path)
        if m and _SPAN_NUMBER.fullmatch(m.group(1)):
            spans.append(int(m.group(1)))
    return sorted(set(spans))


def resolve_span(data_root: str, patterns: dict[str, str], span: int | None) -> int:
    """The span to read: `span`, or the latest (None); checks that TFX reads the same.

    Args:
      data_root: absolute path of the data root.
      patterns: split name -> file pattern relative to it, with `{SPAN}` (`split_patterns`).
      span: the configured span, or None for the latest.

    Raises:
      DataCheckError: naming the data root, the span folder (and the split) that is missing,
        is not a folder, lacks a split's files, or that TFX would read differently.
    """
    check_data_root(data_root)
    level = _span_level(next(iter(patterns.values())))
    found = _tfx_spans(data_root, patterns, span)
    named = _named_spans(data_root, level)
    if span is None:
        candidates = set(named).union(*(spans.keys() for spans in found.values()))
        if not candidates:
            raise DataCheckError(f"no span folders matching {level!r} under {data_root}")
        span = max(candidates)
    elif span not in named:
        listed = ", ".join(map(str, named)) or "none"
        raise DataCheckError(f"span {span} not found under {data_root} (spans: {listed})")
    span_dir = os.path.join(data_root, level.replace(_SPAN, str(span)))
    if not os.path.isdir(span_dir):
        kind = "a broken symbolic link (or a loop)" if not os.path.exists(span_dir) else "a file"
        raise DataCheckError(f"{span_dir}: is {kind}, not a span folder")
    for name, spans in found.items():
        if not any(os.path.isfile(p) or os.path.islink(p) for p in spans.get(span, [])):
            rel = os.path.relpath(
                os.path.join(data_root, patterns[name].replace(_SPAN, str(span))), span_dir)
            split = f" for split {name!r}" if name != "single_split" else ""
            raise DataCheckError(f"{span_dir}: no input files{split} ({rel} matches nothing)")
    return span


def selected_span(cfg: PipelineConfig) -> int:
    """The span a run with `cfg` reads (see resolve_span)."""
    return resolve_span(os.path.abspath(cfg.data.root), split_patterns(cfg), cfg.data.span)
