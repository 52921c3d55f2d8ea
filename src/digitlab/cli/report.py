"""`digitlab report RUN_DIR -o report.html`: one self-contained HTML page for a train, cv or reproduce folder."""

from __future__ import annotations

from digitlab.cli.common import add_data_args


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "report", help="write a self-contained HTML report (images embedded) for a train, cv or reproduce folder",
        description="Write one HTML file holding the run's configuration, data, plots, scores, timings and "
                    "versions. Images are embedded, so it opens offline. Example: digitlab report runs/cv-mlp -o report.html",
    )
    p.add_argument("run", help="run folder written by `digitlab train`, `cv` or `reproduce`")
    p.add_argument("-o", "--output", default=None, help="HTML file to write (default RUN/report.html)")
    add_data_args(p)
    # None: the dataset the run recorded. The data is read only for what the folder lacks.
    p.set_defaults(handler=run, dataset=None)


def run(args) -> int:
    from digitlab.data.dataset import load_dataset
    from digitlab.workflows.report import write_report

    def data_loader(recorded: str):
        return load_dataset(args.dataset or recorded, data_dir=args.data_dir, download=not args.no_download)

    path = write_report(args.run, args.output, data_loader)
    print(f"Wrote {path} ({path.stat().st_size / 1e6:.1f} MB, self-contained)")
    return 0
