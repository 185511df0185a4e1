"""``python -m benchmarks.course NAME|all [--seed S] [--tiny] [--out DIR]``."""

from __future__ import annotations

import argparse
import sys

from benchmarks.course import DEFAULT_OUT, EXPERIMENTS, run_experiment, write_page


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.course",
                                     description="Reproduce the course's claims as experiments.")
    parser.add_argument("name", choices=[*EXPERIMENTS, "all"], help="experiment, or all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiny", action="store_true", help="a few hundred images, a few steps")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="folder for JSON, PNG, README.md")
    args = parser.parse_args(argv)

    from forensics.errors import ForensicsError

    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    try:
        for name in names:
            result = run_experiment(name, seed=args.seed, tiny=args.tiny, out=args.out, page=False)
            verdict = {True: "holds", False: "does not hold", None: "partly"}[result["holds"]]
            print(f"{name}: {verdict} ({result['wall_seconds']:.1f} s) — {result['summary']}",
                  flush=True)
        write_page(args.out)
    except ForensicsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
