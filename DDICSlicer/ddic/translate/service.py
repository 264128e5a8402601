"""Translating image files into an output folder: everything ``ddic translate`` does below its options.

:func:`translate_files` takes the frames, the folder, a ready translator and the head placement, and

1. **checks before writing anything**: no result may overwrite an input; every frame's header is read
   (size limit, truncated data: :mod:`ddic.io.header`); the folder must be writable
   (:func:`ddic.io.writable.check_output_folder`) — a refused run creates no folder;
2. **takes the folder's lock** (:class:`ddic.io.lock.FolderLock`; under ``torchrun`` rank 0 takes it for
   all ranks), so a second run into the same folder refuses instead of interleaving its files;
3. **resumes**: frames that an earlier run with the same settings completed (:mod:`ddic.translate.records`)
   are kept untouched; other existing results are refused unless ``overwrite`` (or they are orphans
   of a killed run with the same settings, which are replaced);
4. **translates in batches** of at most ``options.batch_size`` frames and :data:`MAX_BATCH_FRAME_PIXELS`
   frame pixels (memory is bounded by the batch, not by the number of frames), sharded over ranks;
5. **writes each frame whole**: pseudo-MRI and preview atomically, then its record in the report,
   which is rewritten atomically after every frame — a run killed at any moment leaves only complete
   frames listed, and temporary files that the next run removes.

The CLI only parses options, loads models and prints; the Slicer panel runs the CLI.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DDICInputError, DDICOutputError
from ..io.atomic import is_partial, write_text_atomic
from ..io.header import MAX_FRAME_PIXELS, check_header, read_header
from ..io.images import image_stem, list_images, output_suffix, read_frame, write_like, write_png
from ..io.lock import FolderLock
from ..io.modelfile import sha256_file
from ..io.preview import side_by_side, to_uint8_display
from ..io.writable import check_output_folder, make_output_folder
from ..progress import ProgressCallback, resolve
from .placement import PlacementOptions
from .records import (
    REPORT_KIND,
    FolderState,
    describe_difference,
    is_complete,
    read_state,
    report_name,
    run_identity,
)

PSEUDO_MRI_SUFFIX = "_pseudo_mri"
PREVIEW_SUFFIX = "_side_by_side.png"
MAX_BATCH_FRAME_PIXELS = MAX_FRAME_PIXELS
"""Frame pixels one batch may hold (the frames, their pseudo-MRI and previews are in memory together):
a batch of large frames is split, so peak memory stays that of one largest allowed frame."""
MEMORY_WARN_FRACTION = 0.8
"""After each batch the run's peak memory is compared with the machine's: above this fraction the user is
told to lower --batch-size before a larger batch runs out of memory (BENCHMARKS.md, memory)."""


def memory_note(batch_size: int) -> str | None:
    """A warning when this process's peak memory so far exceeds :data:`MEMORY_WARN_FRACTION` of the RAM."""
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ImportError, AttributeError, ValueError, OSError):
        return None  # Windows, or a system that does not say
    peak *= 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    if not total or peak <= MEMORY_WARN_FRACTION * total:
        return None
    return (f"peak memory {peak / 2**30:.1f} GiB is {100 * peak / total:.0f} % of this machine's "
            f"{total / 2**30:.1f} GiB; a fuller batch may run out of memory — use --batch-size "
            f"{max(1, batch_size // 2)} (memory per batch: BENCHMARKS.md).")


def expand_frames(items: list[str | os.PathLike]) -> list[Path]:
    """Files and folders of images → the frame files, refusing names whose results would collide."""
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = list_images(path)
            if not found:
                raise DDICInputError(f"The folder {path} holds no PNG, JPG, NRRD, NIfTI or MHA images.")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise DDICInputError(f"Frame not found: {path}.")
    stems = [image_stem(p) for p in paths]
    duplicates = sorted({s for s in stems if stems.count(s) > 1})
    if duplicates:
        raise DDICInputError(
            f"Several frames share the name(s) {', '.join(duplicates)}; their results would overwrite each "
            "other in --out. Rename them or translate them into different folders."
        )
    return paths


def output_paths(frame_path: Path, out: Path) -> tuple[Path, Path]:
    """(pseudo-MRI, side-by-side preview) of one frame in ``out``."""
    stem = image_stem(frame_path)
    return out / f"{stem}{PSEUDO_MRI_SUFFIX}{output_suffix(frame_path)}", out / f"{stem}{PREVIEW_SUFFIX}"


def placement_identity(placement: PlacementOptions) -> dict:
    """The head-placement settings that change results (part of a run's identity)."""
    return {"mode": placement.mode, "ellipse": None if placement.ellipse is None else placement.ellipse.to_dict(),
            "pixel_size_mm": placement.pixel_size_mm, "anterior_right": placement.anterior_right,
            "mask_margin_mm": placement.mask_margin_mm}


@dataclass
class TranslateRun:
    """What :func:`translate_files` did, for the CLI to print (the report is also on disk)."""

    report: dict
    report_path: Path
    outputs: list[Path] = field(default_factory=list)  # every frame's pseudo-MRI (kept and new), input order
    previews: list[Path] = field(default_factory=list)
    kept: int = 0  # complete frames of an earlier run, left untouched
    translated: int = 0  # frames translated by this rank now
    notes: list[str] = field(default_factory=list)  # things the user must read (orientation, resume, lock)
    seconds: float = 0.0


class _Ranks:
    """The ranks of one run: a gloo process group under ``torchrun`` (for one lock and one start),
    nothing for a single process."""

    def __init__(self, rank: int, world_size: int):
        self.rank, self.world = int(rank), int(world_size)
        self.own_group = False
        if self.world > 1:
            import torch.distributed as td

            from ..diffusion.distributed import COLLECTIVE_TIMEOUT

            if not td.is_initialized():
                td.init_process_group(backend="gloo", rank=self.rank, world_size=self.world,
                                      timeout=COLLECTIVE_TIMEOUT)
                self.own_group = True

    def agree(self, error: Exception | None) -> None:
        """Rank 0's outcome for every rank: all go on, or all raise its error."""
        if self.world > 1:
            import torch.distributed as td

            box = [None if error is None else str(error)]
            td.broadcast_object_list(box, src=0)
            if box[0] is not None and error is None:
                error = DDICOutputError(box[0])
        if error is not None:
            raise error

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as td

            td.barrier()

    def close(self) -> None:
        if self.own_group:
            import torch.distributed as td

            td.destroy_process_group()


def _precheck(paths: list[Path], out: Path) -> list[int]:
    """Refuse what can be refused before any folder or file is made; returns each frame's pixel count."""
    inputs = {p.resolve() for p in paths}
    for path in paths:
        for target in output_paths(path, out):
            if target.resolve() in inputs:
                raise DDICInputError(f"Writing {target} would overwrite an input frame; choose another --out.")
    pixels = []
    for path in paths:
        header = read_header(path)
        check_header(path, header, MAX_FRAME_PIXELS, "frame")
        pixels.append(header.size[0] * header.size[1])
    check_output_folder(out)
    return pixels


def _batches(paths: list[Path], pixels: dict[Path, int], batch_size: int) -> list[list[Path]]:
    """Consecutive groups of ≤ ``batch_size`` frames and ≤ :data:`MAX_BATCH_FRAME_PIXELS` frame pixels."""
    batches: list[list[Path]] = []
    current: list[Path] = []
    held = 0
    for path in paths:
        if current and (len(current) >= batch_size or held + pixels[path] > MAX_BATCH_FRAME_PIXELS):
            batches.append(current)
            current, held = [], 0
        current.append(path)
        held += pixels[path]
    if current:
        batches.append(current)
    return batches


def _plan(paths: list[Path], out: Path, state: FolderState, identity: dict, overwrite: bool
          ) -> tuple[list[Path], dict[Path, dict]]:
    """(frames to translate, records of the complete frames to keep), or a refusal."""
    same = state.identity == identity
    if state.identity is not None and not same and not overwrite:
        if "unknown" in state.identity:
            why = "written by an older ddic, whose frames cannot be checked"
        else:
            why = f"made with other settings ({describe_difference(state.identity, identity)})"
        raise DDICOutputError(f"{out} already holds a translation {why}. Use --overwrite to replace it, or "
                              "choose another --out folder.")
    todo, keep = [], {}
    for path in paths:
        record = state.records.get(str(path.resolve())) if same and not overwrite else None
        targets = output_paths(path, out)
        if is_complete(record, path, targets):
            keep[path] = record
            continue
        if not overwrite and not same and any(t.exists() for t in targets):
            existing = next(t for t in targets if t.exists())
            raise DDICOutputError(f"{existing} already exists; use --overwrite or another --out folder.")
        todo.append(path)
    return todo, keep


def _write_frame_whole(result, mri_path: Path, preview_path: Path) -> None:
    """The pseudo-MRI, then the preview, each atomically; if the preview cannot be written (a full disk), the
    pseudo-MRI written here is removed again, so a frame is either complete (both files, then its record) or
    absent — never a pseudo-MRI without its record."""
    write_like(result.pseudo_mri, result.frame, mri_path)
    try:
        left = to_uint8_display(result.frame.pixels, result.frame.is_8bit)
        write_png(side_by_side(left, result.pseudo_mri), preview_path)
    except BaseException:
        mri_path.unlink(missing_ok=True)
        raise


def _remove_partials(out: Path) -> int:
    """Temporary files of killed runs (never a result's name); only called while holding the lock."""
    removed = 0
    for path in out.iterdir():
        if path.is_file() and is_partial(path):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def translate_files(paths: list[Path], out: str | os.PathLike, translator, placement: PlacementOptions, *,
                    model_ids: dict, overwrite: bool = False, progress: ProgressCallback | None = None,
                    rank: int = 0, world_size: int = 1, on_start: Callable[[dict], None] | None = None,
                    on_note: Callable[[str], None] | None = None) -> TranslateRun:
    """Translate ``paths`` into ``out`` (module docstring); returns what was done.

    ``translator`` is a ready :class:`ddic.translate.engine.Translator` (or the CycleGAN one) whose
    ``options`` are the run's; ``model_ids`` are recorded (and part of the run's identity); ``rank`` /
    ``world_size`` shard the frames under ``torchrun``; ``on_start`` receives what is about to run;
    ``on_note`` each note for the user as it arises (they are also in :attr:`TranslateRun.notes`).
    """
    from .frames import translate_frames
    from .trust import warning_text

    out = Path(out)
    progress = resolve(progress)
    options = translator.options
    identity = run_identity(options.to_dict(), model_ids, placement_identity(placement))
    pixel_counts = dict(zip(paths, _precheck(paths, out)))
    created = not out.exists()
    ranks = _Ranks(rank, world_size)
    lock = FolderLock(out, purpose="ddic translate")
    report_path = out / report_name(rank, world_size)
    run = TranslateRun(report={}, report_path=report_path)
    written_by_me: list[Path] = []

    def note(text: str) -> None:
        run.notes.append(text)
        if on_note is not None:
            on_note(text)

    try:
        error = None
        if rank == 0:
            try:
                make_output_folder(out)
                lock.acquire()
                removed = _remove_partials(out)
                if lock.stale is not None:
                    note(f"took over the lock of a run that is gone (pid {lock.stale.get('pid')}, "
                                     f"since {lock.stale.get('since')})"
                                     + (f"; removed {removed} temporary file(s) it left" if removed else ""))
            except DDICOutputError as exc:
                error = exc
        ranks.agree(error)
        state = read_state(out)
        todo, keep = _plan(paths, out, state, identity, overwrite)
        ranks.barrier()  # every rank has read the folder before any rank writes to it

        mine = todo[rank::world_size]
        carried = [dict(keep[p]) for p in paths if p in keep] if rank == 0 else []
        if rank == 0:
            for old in state.reports:
                if old.name not in {report_name(r, world_size) for r in range(world_size)}:
                    old.unlink(missing_ok=True)  # its kept records are carried into this run's report
        if keep and rank == 0:
            note(f"resuming: {len(keep)} of {len(paths)} frame(s) already complete in {out} "
                             f"(kept untouched); translating the other {len(todo)}")
        run.kept = len(keep)
        report = {
            "kind": REPORT_KIND, "status": "running", "identity": identity,
            "options": options.to_dict(), "step_lr": options.step_lr(translator.image_size),
            "trust_threshold": getattr(translator, "trust_threshold", None),
            "trust_threshold_source": getattr(translator, "trust_threshold_source", None), **model_ids,
            "device": str(translator.device), "rank": rank, "world_size": world_size, "host": platform.node(),
            "frames": carried,
        }
        run.report = report
        write_text_atomic(report_path, json.dumps(report, indent=2) + "\n")
        if on_start is not None and rank == 0:
            on_start({"frames": len(paths), "to_translate": len(todo), "kept": len(keep),
                      "device": str(translator.device)})

        started = time.perf_counter()
        batches = _batches(mine, pixel_counts, options.batch_size)
        per_batch = translator.steps_per_image_batch
        total = len(batches) * per_batch
        warned_memory = False
        for index, batch in enumerate(batches):
            frames = [read_frame(p) for p in batch]

            def batch_progress(done, _total, message, offset=index * per_batch):
                progress(offset + done, total, message)

            results = translate_frames(frames, translator, progress=batch_progress, placement=placement)
            for path, result in zip(batch, results):
                mri_path, preview_path = output_paths(path, out)
                _write_frame_whole(result, mri_path, preview_path)
                written_by_me.append(mri_path)
                record = {"frame": str(path), "frame_sha256": sha256_file(path),
                          "pseudo_mri": str(mri_path), "pseudo_mri_sha256": sha256_file(mri_path),
                          "preview": str(preview_path), "preview_sha256": sha256_file(preview_path),
                          "final_correlation": result.final_correlation, "placement": result.placement,
                          "us_round_trip_rmse": result.us_round_trip_rmse, "trusted": result.trusted}
                report["frames"].append(record)
                run.translated += 1
                elapsed = time.perf_counter() - started
                report.update(seconds=round(elapsed, 3), seconds_per_frame=round(elapsed / run.translated, 3))
                write_text_atomic(report_path, json.dumps(report, indent=2) + "\n")
                if result.trusted is False:
                    note(warning_text(path.name, result.us_round_trip_rmse, result.trust_threshold))
                undecided = orientation_note(path, result.placement)
                if undecided:
                    note(undecided)
            if not warned_memory:
                warning = memory_note(options.batch_size)
                if warning:
                    note(warning)
                    warned_memory = True
        run.seconds = time.perf_counter() - started
        report.update(status="complete", seconds=round(run.seconds, 3),
                      seconds_per_frame=round(run.seconds / max(run.translated, 1), 3))
        write_text_atomic(report_path, json.dumps(report, indent=2) + "\n")
        ranks.barrier()
        done = {str(Path(r["frame"]).resolve()) for r in report["frames"]}
        for path in paths:  # this report's frames (kept and new), in input order
            if str(path.resolve()) in done:
                mri_path, preview_path = output_paths(path, out)
                run.outputs.append(mri_path)
                run.previews.append(preview_path)
        return run
    except BaseException as exc:
        if run.report and report_path.exists():
            run.report.update(status="interrupted", error=str(exc) or type(exc).__name__)
            try:
                write_text_atomic(report_path, json.dumps(run.report, indent=2) + "\n")
            except (DDICOutputError, OSError):
                pass
        if created and rank == 0 and not written_by_me and not run.kept:
            report_path.unlink(missing_ok=True)  # a refused run leaves no folder behind
            lock.release()
            try:
                out.rmdir()
            except OSError:
                pass
        raise
    finally:
        lock.release()
        ranks.close()


def orientation_note(path: Path, placement: dict | None) -> str | None:
    """The line to print when a frame's front/back orientation was not decided from the image."""
    if not placement or placement.get("orientation_source") != "default":
        return None
    side = "right" if placement.get("anterior_right") else "left"
    other = "left" if side == "right" else "right"
    return (f"{path.name}: front/back orientation undecided from the image; assumed the frontal end on the "
            f"{side} of the head's major axis (the default). Check the pseudo-MRI; if it is mirrored front "
            f"to back, rerun with --anterior {other}.")
