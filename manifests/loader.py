"""Read, validate and write shot manifests.

`load_manifest` never stops at the first problem: it returns the good rows (URIs resolved) and one
`RowError` per problem, so a batch runs its good shots and reports the bad ones.
"""
from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from manifests.schema import REQUIRED, SCHEMA, ShotRow, row_to_record
from void_engine.errors import InputError
from void_engine.io.atomic import atomic_path


@dataclass(frozen=True)
class RowError:
    row: int  # 0-based row index in the file
    shot_id: str | None
    message: str

    def __str__(self) -> str:
        who = f"shot {self.shot_id}" if self.shot_id else "shot ?"
        return f"row {self.row} ({who}): {self.message}"


@dataclass
class Manifest:
    uri: str
    shots: list[ShotRow] = field(default_factory=list)  # valid rows, URIs resolved
    rows: list[int] = field(default_factory=list)  # file row index of each shot
    errors: list[RowError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def resolve_uri(uri: str, base: str) -> str:
    """A manifest URI made absolute: URLs and absolute paths as they are, relative paths
    joined to the manifest's folder `base` (itself a local folder or a URL prefix)."""
    if "://" in uri:
        return uri[len("file://"):] if uri.startswith("file://") else uri
    if os.path.isabs(uri):
        return uri
    if "://" in base:
        return posixpath.normpath(posixpath.join(base, uri)).replace(":/", "://", 1)
    return os.path.normpath(os.path.join(base, uri))


def manifest_folder(uri: str) -> str:
    if is_remote(uri):
        return uri.rsplit("/", 1)[0]
    return os.path.dirname(os.path.abspath(uri.removeprefix("file://")))


def read_table(uri: str) -> pa.Table:
    with fsspec.open(uri, "rb") as f:
        return pq.read_table(f)


def _exists(uri: str, memo: dict[str, bool]) -> bool:
    if uri not in memo:
        if is_remote(uri):
            fs, path = fsspec.core.url_to_fs(uri)
            memo[uri] = fs.exists(path)
        else:
            memo[uri] = os.path.isfile(uri)
    return memo[uri]


def _pydantic_errors(exc: ValidationError) -> list[str]:
    out = []
    for e in exc.errors():
        where = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        out.append(f"{where}: {msg}" if where else msg)
    return out


def validate_records(records: Iterable[dict], base: str, *, engines: Iterable[str] | None = None,
                     check_files: bool = True, uri: str = "",
                     output_roots: Iterable[str] = (), check_engines: bool = True) -> Manifest:
    """Validate rows: types and rules (ShotRow), unique shot_id, known engine, files present,
    output_uri inside the output root (relative, not escaping it) or one of `output_roots`."""
    if engines is None:
        from void_engine.engines.base import available_engines

        engines = available_engines()
    engines = set(engines)
    m = Manifest(uri=uri)
    first_row: dict[str, int] = {}
    exists: dict[str, bool] = {}
    for i, rec in enumerate(records):
        sid = rec.get("shot_id")
        sid = str(sid) if sid is not None and sid != "" else None
        try:
            row = ShotRow.model_validate(rec)
        except ValidationError as exc:
            m.errors.extend(RowError(i, sid, msg) for msg in _pydantic_errors(exc))
            continue
        problems = []
        if row.shot_id in first_row:
            problems.append(f"duplicate shot_id {row.shot_id!r} (first used in row "
                            f"{first_row[row.shot_id]}); this row is ignored")
        else:
            first_row[row.shot_id] = i
        if check_engines and row.engine is not None and row.engine not in engines:
            problems.append(f"unknown engine {row.engine!r} "
                            f"(available: {', '.join(sorted(engines))})")
        resolved = {k: resolve_uri(v, base) for k, v in row.uri_fields().items()}
        if check_files:
            problems += [f"{k}: file not found: {v}" for k, v in resolved.items()
                         if not _exists(v, exists)]
        if row.output_uri:
            problems += _output_problems(row.output_uri, output_roots)
        if problems:
            m.errors.extend(RowError(i, row.shot_id, p) for p in problems)
            continue
        m.shots.append(row.model_copy(update=resolved))
        m.rows.append(i)
    return m


def _output_problems(output_uri: str, roots: Iterable[str]) -> list[str]:
    """A row may only write inside the run's output root (a relative output_uri that does not
    climb out of it) or inside a root the command line names (--output-root): never a place
    taken from the manifest alone."""
    if "://" not in output_uri and not os.path.isabs(output_uri):
        norm = posixpath.normpath(output_uri.replace(os.sep, "/"))
        if norm == ".." or norm.startswith("../"):
            return [f"output_uri {output_uri!r} climbs out of the output root"]
        return []
    target = _norm_root(output_uri)
    if any(target == r or target.startswith(r.rstrip("/") + "/")
           for r in map(_norm_root, roots)):
        return []
    return [f"output_uri {output_uri!r} is outside the output root (name its root with "
            "--output-root to allow it)"]


def _norm_root(uri: str) -> str:
    if "://" in uri and not uri.startswith("file://"):
        scheme, _, path = uri.partition("://")
        return f"{scheme}://{posixpath.normpath(path)}"
    return os.path.normpath(os.path.abspath(uri.removeprefix("file://")))


def load_manifest(uri: str | os.PathLike, *, engines: Iterable[str] | None = None,
                  check_files: bool = True, output_roots: Iterable[str] = (),
                  check_engines: bool = True) -> Manifest:
    """Read a Parquet manifest; raises InputError only when the file itself is unusable."""
    uri = str(uri)
    try:
        table = read_table(uri)
    except FileNotFoundError:
        raise InputError(f"manifest not found: {uri}") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"manifest {uri} is not a readable Parquet file: {exc}") from None
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise InputError(f"manifest {uri} lacks required column(s): {', '.join(missing)}")
    return validate_records(table.to_pylist(), manifest_folder(uri), engines=engines,
                            check_files=check_files, uri=uri, output_roots=output_roots,
                            check_engines=check_engines)


def select(manifest: Manifest, shots: list[str] | None = None, tags: list[str] | None = None,
           ) -> tuple[list[int], list[list[RowError]]]:
    """Indices of the good rows to run, and the bad rows (grouped per file row) to report,
    both restricted to the requested shot ids / tags when given."""
    want = set(shots or ())
    want_tags = set(tags or ())

    def chosen(shot_id: str | None, shot_tags=()) -> bool:
        if want and shot_id not in want:
            return False
        return not want_tags or bool(want_tags & set(shot_tags))

    picked = [i for i, s in enumerate(manifest.shots) if chosen(s.shot_id, s.tags)]
    by_row: dict[int, list[RowError]] = {}
    for e in manifest.errors:
        if not want_tags and chosen(e.shot_id):
            by_row.setdefault(e.row, []).append(e)
    known = {s.shot_id for s in manifest.shots} | {e.shot_id for e in manifest.errors}
    for sid in sorted(want - known):
        by_row[-1 - len(by_row)] = [RowError(-1, sid, "shot_id not in the manifest")]
    return picked, list(by_row.values())


def write_manifest(rows: Iterable[ShotRow | dict], out: str | os.PathLike) -> str:
    """Write rows with the canonical schema (temp name, then rename)."""
    records = [row_to_record(r) if isinstance(r, ShotRow) else
               {f.name: r.get(f.name) for f in SCHEMA} for r in rows]
    table = pa.Table.from_pylist(records, schema=SCHEMA)
    out = str(out)
    with atomic_path(out, what="manifest") as tmp:  # local or fsspec URI
        pq.write_table(table, tmp)
    return out


# --- building a manifest from sample-style folders --------------------------------------------
QUADMASK_NAMES = ("quadmask_0.mp4", "trimask_quadmask.mp4", "quadmask.mp4")
PLATE_NAMES = ("input_video.mp4", "plate.mp4")


def rows_from_folder(folder: str | os.PathLike, relative_to: str | os.PathLike | None = None
                     ) -> list[ShotRow]:
    """One row per sub-folder laid out like ../shared/samples: input_video.mp4, a quadmask
    (quadmask_0.mp4 or trimask_quadmask.mp4) and prompt.json {"bg": ...}. Paths are written
    relative to `relative_to` (the manifest's folder) so the manifest travels with the data."""
    # abspath, not resolve(): a symlinked show mount stays the path the user gave
    folder = Path(os.path.abspath(folder))
    rel_base = Path(os.path.abspath(relative_to)) if relative_to else None
    rows = []
    for d in sorted(p for p in folder.iterdir() if p.is_dir()):
        plate = next((d / n for n in PLATE_NAMES if (d / n).is_file()), None)
        mask = next((d / n for n in QUADMASK_NAMES if (d / n).is_file()), None)
        if plate is None or mask is None:
            continue

        def rel(p: Path) -> str:
            return os.path.relpath(p, rel_base) if rel_base else str(p)

        prompt = ""
        if (d / "prompt.json").is_file():
            prompt = json.loads((d / "prompt.json").read_text()).get("bg", "")
        rows.append(ShotRow(shot_id=d.name, plate_uri=rel(plate), quadmask_uri=rel(mask),
                            prompt=prompt, passes="auto", tags=[folder.name]))
    return rows
