"""Execute the tutorials (docs/tutorials/*.py, py-percent cells) and write their pages.

Run by mkdocs-gen-files during ``mkdocs build``: each ``# %%`` code cell is executed in one
namespace per tutorial, and the page shows the code, what it printed and every matplotlib
figure it left open. An exception fails the build. ``python docs/gen_tutorials.py [NAME ...]``
runs them without mkdocs and prints each one's time (figures go to a temporary folder).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path("docs").resolve()
TUTORIALS = ["eve", "norse", "snntorch", "spikingjelly", "snetx"]


def cells(source: str) -> list[tuple[str, str, int]]:
    """Split py-percent source into ``("markdown" | "code", text, first line number - 1)`` cells."""
    out: list[tuple[str, list[str], int]] = []
    kind, lines, start = "code", [], 0
    for n, line in enumerate(source.splitlines()):
        if line.startswith("# %%"):
            out.append((kind, lines, start))
            kind, lines, start = ("markdown" if "[markdown]" in line else "code"), [], n + 1
            continue
        if kind == "markdown":
            line = line[2:] if line.startswith("# ") else line.lstrip("#")
        lines.append(line)
    out.append((kind, lines, start))
    return [(k, "\n".join(ls), st) for k, ls, st in out if "\n".join(ls).strip()]


def execute(name: str, write) -> tuple[str, float, list[str]]:
    """Run ``docs/tutorials/<name>.py``; ``write(path, bytes)`` stores a figure. Returns
    the page's markdown, the seconds taken and the printed lines that mention an accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = HERE / "tutorials" / f"{name}.py"
    ns: dict = {"__name__": "__main__", "__file__": str(path)}
    md: list[str] = []
    acc_lines: list[str] = []
    n_fig = 0
    t0 = time.perf_counter()
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # whatever a tutorial writes stays out of the repository
        try:
            for kind, raw, start in cells(path.read_text()):
                text = raw.strip("\n")
                if kind == "markdown":
                    md.append(text + "\n")
                    continue
                md.append(f"```python\n{text}\n```\n")
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
                    # padded so that a traceback names the line of the .py file
                    exec(compile("\n" * start + raw, str(path), "exec"), ns)
                printed = buf.getvalue().rstrip()
                if printed:
                    md.append(f"```text\n{printed}\n```\n")
                    acc_lines += [ln for ln in printed.splitlines() if "accuracy" in ln.lower()]
                for num in plt.get_fignums():
                    fig = plt.figure(num)
                    png = io.BytesIO()
                    fig.savefig(png, format="png", dpi=90, bbox_inches="tight")
                    n_fig += 1
                    write(f"tutorials/{name}_files/fig{n_fig}.png", png.getvalue())
                    md.append(f"![figure {n_fig}]({name}_files/fig{n_fig}.png)\n")
                plt.close("all")
        finally:
            os.chdir(cwd)
    seconds = time.perf_counter() - t0
    md.append(
        f"---\n\n*Executed when this site was built, in {seconds:.1f} s (short settings; set "
        f"`FULL = True` at the top for the full-length run). Source: "
        f"[`docs/tutorials/{name}.py`]({name}.py).*\n"
    )
    return "\n".join(md), seconds, acc_lines


def main_gen_files() -> None:
    import mkdocs_gen_files

    def write(p: str, data: bytes) -> None:
        with mkdocs_gen_files.open(p, "wb") as f:
            f.write(data)

    total = 0.0
    for name in TUTORIALS:
        page, seconds, acc = execute(name, write)
        total += seconds
        with mkdocs_gen_files.open(f"tutorials/{name}.md", "w") as f:
            f.write(page)
        print(f"tutorial {name}: {seconds:.1f} s; " + " | ".join(acc[-1:]), file=sys.__stderr__, flush=True)
    print(f"tutorials: {total:.1f} s in all", file=sys.__stderr__, flush=True)


if __name__ == "__main__":
    out = Path(tempfile.mkdtemp())

    def write(p: str, data: bytes) -> None:
        (out / p).parent.mkdir(parents=True, exist_ok=True)
        (out / p).write_bytes(data)

    total = 0.0
    for name in sys.argv[1:] or TUTORIALS:
        page, seconds, acc = execute(name, write)
        (out / f"{name}.md").write_text(page)
        total += seconds
        print(f"{name}: {seconds:.1f} s; {' | '.join(acc)}", flush=True)
    print(f"total {total:.1f} s; pages in {out}")
else:
    main_gen_files()
