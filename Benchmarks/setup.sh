# Sourced by compare.sh and ort_idle.sh: builds idlevit in release and picks the Python that
# runs the contenders. Sets HERE, ROOT, SCRATCH, IDLEVIT and PYTHON.
#
#   VENV=/work/venv ...   reuse a venv that has Benchmarks/requirements.txt installed;
#                         otherwise Benchmarks/work/venv is created once (several GB for torch).
#   SCRATCH=DIR           swift's build folder (default: .build)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SCRATCH="${SCRATCH:-$ROOT/.build}"

echo "== building idlevit (release)" >&2
(cd "$ROOT" && swift build -c release --product idlevit --scratch-path "$SCRATCH" >&2)
IDLEVIT="$SCRATCH/release/idlevit"

if [ -n "${VENV:-}" ] && [ -x "$VENV/bin/python" ]; then
    PYTHON="$VENV/bin/python"
else
    VENV="$HERE/work/venv"
    if [ ! -x "$VENV/bin/python" ]; then
        echo "== creating $VENV (pip install -r Benchmarks/requirements.txt, several GB for torch)" >&2
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q --upgrade pip
        "$VENV/bin/pip" install -q -r "$HERE/requirements.txt"
    fi
    PYTHON="$VENV/bin/python"
fi
