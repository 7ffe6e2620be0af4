"""`python -m prescaler.crd [PATH]`: write the CRD rendered from the spec (controller.crd), atomically.

After changing controller/policy/spec.py, run it; tests/controller/test_manifests.py keeps the
committed configs/crd/predictiveautoscalers.yaml equal to what controller.crd renders.
"""

from __future__ import annotations

import sys
from pathlib import Path

from controller.crd import CRD_PATH, render_crd
from forecaster.atomic import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else CRD_PATH
    atomic_write_text(target, render_crd())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
