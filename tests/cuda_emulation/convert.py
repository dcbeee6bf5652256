"""Rewrite the CUDA sources for the host emulation (emulate.h).

    python convert.py SRC_DIR OUT_DIR

Every *.cu and *.cuh file under SRC_DIR (csrc) is copied to the same place under OUT_DIR
with each kernel launch

    kernel<<<grid, block[, smem[, stream]]>>>(args...)

rewritten into

    kernel + ::emu::LaunchCfg("file.cu:line", grid, block[, smem[, stream]])(args...)

which emulate.h turns into an emulated launch. Nothing else changes: the kernel expression
(template arguments included) stays as written, and line numbers are kept, so compiler
messages point at the real source lines. The copies keep their paths, so with OUT_DIR ahead
of csrc on the include path their includes ("core/check.cuh", "gemm/gemm.cuh") resolve to
each other, as in csrc.
"""
import pathlib
import re
import sys

_LAUNCH = re.compile(r"<<<")


def _strip_comments_mask(src):
    """A copy of src with comments and string literals blanked (same length), so launch
    syntax is only looked for in code."""
    out = list(src)
    i, n = 0, len(src)
    while i < n:
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
        elif src[i] in "\"'":
            q, j = src[i], i + 1
            while j < n and src[j] != q:
                j += 2 if src[j] == "\\" else 1
            j += 1
        else:
            i += 1
            continue
        for k in range(i, min(j, n)):
            if out[k] != "\n":
                out[k] = " "
        i = j
    return "".join(out)


def convert(src, name):
    code = _strip_comments_mask(src)
    pieces, pos = [], 0
    for m in _LAUNCH.finditer(code):
        start = m.start()
        if start < pos:
            continue
        end = code.find(">>>", start + 3)
        if end < 0:
            raise SystemExit(f"{name}: unterminated <<< at offset {start}")
        after = code[end + 3:].lstrip()
        if not after.startswith("("):
            raise SystemExit(f"{name}: launch at offset {start} is not followed by '('")
        line = src.count("\n", 0, start) + 1
        config = src[start + 3:end]
        # Keep the line count of the configuration (it may span lines).
        pieces.append(src[pos:start])
        pieces.append(f' + ::emu::LaunchCfg("{name}:{line}", {config})')
        pos = end + 3
    pieces.append(src[pos:])
    return "".join(pieces)


def main(argv):
    src_dir, out_dir = pathlib.Path(argv[1]), pathlib.Path(argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(list(src_dir.rglob("*.cu")) + list(src_dir.rglob("*.cuh"))):
        rel = path.relative_to(src_dir)
        new = convert(path.read_text(), rel.as_posix())
        count += new.count("::emu::LaunchCfg(")
        (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (out_dir / rel).write_text(new)
    print(f"converted {count} launch(es) from {src_dir} into {out_dir}")


if __name__ == "__main__":
    main(sys.argv)
