"""`python -m benchmark ...` (console script `uqbench`). Warnings of the code a command runs are kept off stderr
(benchmark.warnings_log: a run writes them to its folder's warnings.log; --debug shows them)."""
import os
import sys

from benchmark.cli import main as cli_main
from benchmark.warnings_log import collecting


def main() -> int:
    debug = "--debug" in sys.argv or os.environ.get("UQBENCH_DEBUG", "") not in ("", "0")
    with collecting(debug):
        return cli_main()


if __name__ == "__main__":
    sys.exit(main())
