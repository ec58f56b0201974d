"""Session starts: the shipped models on subject 0's two real nights (never seen by any of
them), for sessions that start at lights-off and for sessions that do not.

The cases of :mod:`sleepnet.train.sessions` (the protocol's lights-off session; sessions
started 2 h and 4 h after it; 30 min around each REM onset), each scored by fresh stagers
of the shipped model as live and batch scoring do: the GBM alone in its own session start
(``lights-off``: the clock from the session start, as it was trained), and the default in
its own (``unknown``: no clock) and told ``lights-off`` (which is then wrong for every case
but the first). Leave-one-subject-out over all 10 subjects, which trains the models again,
is ``python -m benchmarks.real_nights``; this runs in seconds and measures the weights as
shipped, on one subject.

    .venv/bin/python -m benchmarks.session_starts [--markdown]

Writes ``benchmarks/results/session_starts.json``.
"""
from __future__ import annotations

import argparse

from .common import SHARED, Figure, script_main, this_command

MODULE = "benchmarks.session_starts"
RUNS = (("feature-gbm-sleepedf-v1", None), ("gbm-gru-sleepedf-v1", None), ("gbm-gru-sleepedf-v1", "lights-off"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--folder", default=str(SHARED / "sleep-edf-features"),
                   help="folder of feature nights (subject 0's are SC400*.npz)")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown (for the model card)")


def run(args: argparse.Namespace) -> dict:
    from sleepnet.io.feature_nights import read_feature_folder
    from sleepnet.metrics import agreement
    from sleepnet.train.sessions import CASES, case_codes, summarise
    from sleepnet.weights import load_model

    nights = [n for n in read_feature_folder(args.folder) if n.subject == "00"]
    if not nights:
        raise SystemExit(f"{args.folder}: no night of subject 0")
    cmd = this_command(MODULE, getattr(args, "argv", None))
    table, figs = {}, []
    for name, start in RUNS:
        model = load_model(name)
        key = f"{name}@{start or model.new_stager().session_start}"
        table[key] = {c: summarise(agreement(*case_codes(model, nights, c, start))) for c in CASES}
        for c in CASES:
            s = table[key][c]
            figs.append(Figure(f"subject 0, {key}, {c}: accuracy", float(s["accuracy"]), "", "", None, cmd,
                               f"kappa {s['kappa']:.3f}, REM recall {s['rem_recall']:.2f}, REM F1 {s['rem_f1']:.2f}, "
                               f"{s['n_epochs']} epochs"))
    if args.markdown:
        print("| model, session start | " + " | ".join(CASES) + " |")
        print("|---|" + "---|" * len(CASES))
        for key, row in table.items():
            print(f"| {key} | " + " | ".join(f"{row[c]['accuracy']:.3f} / {row[c]['kappa']:.3f} / "
                                             f"{row[c]['rem_recall']:.2f} / {row[c]['rem_f1']:.2f}" for c in CASES) + " |")
    return {"figures": figs, "cases": table, "nights": [n.name for n in nights]}


def main(argv: list[str] | None = None) -> None:
    script_main("session_starts", __doc__, add_arguments, run, argv, ".3f")


if __name__ == "__main__":
    main()
