"""Where one ``benchmark`` run writes, decided and checked before anything is sent.

Every run's records are its own and never overwritten:

* a run directory per run, for ``--url`` runs as for managed ones: ``--run-dir DIR``, or by
  default a new ``runs/TIME-BACKEND`` (``runs/TIME-url``), holding ``results.json`` and
  ``requests.jsonl`` (and, managed, the spans, samples, logs and report);
* ``--output FILE`` without ``--run-dir`` (``--url`` runs) puts the results at ``FILE`` and the
  records beside it under a name of its own: ``requests.jsonl`` beside ``results.json`` (a run
  directory's layout), ``NAME.requests.jsonl`` beside ``NAME.json`` — so ``--output a.json``
  and ``--output b.json`` in one folder keep two record files;
* a records file that already exists, or a run directory that already holds a run, is
  refused with one line (choose another ``--output``/``--run-dir``, or remove it).

The results document names its records file exactly (``records_path``, relative to the
results file's folder when beside it).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from open_autoglm.commands._errors import UsageError
from open_autoglm.commands._paths import input_file, output_dir, output_file

RESULTS_NAME: Final = "results.json"
RECORDS_NAME: Final = "requests.jsonl"
REPORT_NAME: Final = "report.json"
#: What a run directory holds once a run used it (records, or a managed run's spans).
_RUN_MARKERS: Final = (RECORDS_NAME, "spans.duckdb")


@dataclass(frozen=True, slots=True)
class RunFiles:
    """The files of one run: ``run_dir`` (``None`` for a ``--url`` run written with
    ``--output`` alone), the results, the records, and a managed run's report."""

    run_dir: Path | None
    results: Path
    records: Path
    report: Path | None = None


def default_run_dir(label: str, root: Path = Path("runs")) -> Path:
    """A run directory that does not exist yet: ``runs/YYYYmmdd-HHMMSS-LABEL`` (``-2``,
    ``-3``... when two runs start in one second)."""
    base = time.strftime("%Y%m%d-%H%M%S") + f"-{label}"
    candidate, n = root / base, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{base}-{n}"
    return candidate


def plan_run_files(args: argparse.Namespace) -> RunFiles:
    """The files of the run ``args`` describes, each checked (:mod:`._paths`); raises
    :class:`UsageError` with one line on a path that cannot be used or holds another run."""
    managed = bool(args.backend)
    # ``--output -``: the JSON goes to stdout, the files to the run directory as usual
    output: Path | None = None if str(args.output) == "-" else args.output
    if managed and args.records is not None:
        raise UsageError("--records is for --url runs; a managed run keeps them in --run-dir")
    run_dir: Path | None = args.run_dir
    if run_dir is None and (managed or output is None):
        run_dir = default_run_dir(args.backend if managed else "url")
    if run_dir is not None:
        output_dir(run_dir, "--run-dir")
        for name in _RUN_MARKERS:
            if (run_dir / name).exists():
                raise UsageError(
                    f"--run-dir {run_dir}: already holds a run ({name}); choose a new one"
                )
    if managed:
        assert run_dir is not None
        report = output_file(output or run_dir / REPORT_NAME, "--output")
        return RunFiles(run_dir, run_dir / RESULTS_NAME, run_dir / RECORDS_NAME, report)
    if output is not None:
        results = output_file(output, "--output")
    else:
        assert run_dir is not None
        results = run_dir / RESULTS_NAME
    if args.records is not None:
        records = args.records
    elif run_dir is not None:
        records = run_dir / RECORDS_NAME
    else:
        from open_autoglm.loadgen import records_beside

        records = records_beside(results)
    output_file(records, "--records")
    if records.exists():
        raise UsageError(
            f"--records {records}: already holds another run's records (records are never "
            "overwritten); choose another --output or --run-dir, or remove it"
        )
    if records.resolve() == results.resolve():
        raise UsageError(f"--records and --output are one file ({records})")
    return RunFiles(run_dir, results, records)


def check_inputs(args: argparse.Namespace) -> None:
    """The input files given: each a regular, readable file (a directory is allowed for
    ``--tokenizer``, which reads ``tokenizer.json`` in it)."""
    if args.dataset_path is not None:
        input_file(args.dataset_path, "--dataset-path")
    for image in args.image_file:
        input_file(image, "--image-file")
    if args.tokenizer is not None and not args.tokenizer.is_dir():
        input_file(args.tokenizer, "--tokenizer")
