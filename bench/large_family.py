"""A family of many models, trained end to end: wall time and peak memory of the whole run (#25, items 1 and 15).

    .venv/bin/python bench/large_family.py 30 100     # a 30- and a 100-model family, --sample 300 --epochs 1

Each family is N small MLPs of one or two hidden layers (widths 8..64, names "m1".."mN"). The run is
`job run --spec-file <family> --sample 300 --epochs 1` under `/usr/bin/time -v`, so the peak is the whole
process's (Cochran's Q over N models, N x N pairs, the report's grid of panels included).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path


def family_text(n: int) -> str:
    tables = []
    for i in range(n):
        hidden = [8 + (i * 7) % 57] if i % 2 else [8 + (i * 5) % 57, 8 + (i * 3) % 29]
        tables.append(f'[[model]]\nname = "m{i + 1}"\nhidden = {hidden}\n')
    return "\n".join(tables)


def measure(n: int, tmp: Path) -> dict:
    family = tmp / f"family-{n}.toml"
    family.write_text(family_text(n), encoding="utf-8")
    out = tmp / f"out-{n}"
    args = ["/usr/bin/time", "-v", sys.executable, "-m", "job", "run", "--spec-file", str(family)]
    args += ["--sample", "300", "--epochs", "1", "--out", str(out)]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{n} models: exit {done.returncode}\n{done.stderr[-3000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", done.stderr).group(1)
    parts = [float(p) for p in wall.split(":")]
    seconds = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    report = (run_dir / "report.html").stat().st_size
    return {"models": n, "seconds": round(seconds, 1), "peak_gb": round(peak_kb / 2**20, 2), "report_mb": report / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[30, 100])
    with tempfile.TemporaryDirectory() as tmp:
        for n in parser.parse_args().sizes:
            r = measure(n, Path(tmp))
            print(f"{r['models']} models: {r['seconds']} s, {r['peak_gb']} GB peak, report {r['report_mb']:.2f} MB")


if __name__ == "__main__":
    main()
