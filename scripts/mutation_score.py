"""Print the mutation score of the last ``mutmut run`` (``make mutate``; see docs/testing.md).

Reads ``mutants/mutmut-cicd-stats.json`` (written by ``mutmut export-cicd-stats``). A mutant that
made a test time out counts as killed: the tests noticed it. Mutants no selected test reaches
count against the score, like survivors.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

STATS = Path("mutants/mutmut-cicd-stats.json")


def main() -> int:
    """Print killed, survived, untested and the score; 1 when there are no stats."""
    if not STATS.is_file():
        print(f"{STATS} not found: run `make mutate`", file=sys.stderr)
        return 1
    stats = json.loads(STATS.read_text())
    caught = stats["killed"] + stats["timeout"]
    missed = stats["survived"] + stats["no_tests"] + stats["suspicious"] + stats["segfault"]
    judged = caught + missed
    unchecked = stats["total"] - judged - stats["skipped"]
    score = 100 * caught / judged if judged else 0.0
    print(
        f"mutation score {score:.1f}% ({caught} of {judged} mutants caught: {stats['killed']} killed, "
        f"{stats['timeout']} timed out; {stats['survived']} survived, {stats['no_tests']} untested, "
        f"{stats['suspicious']} suspicious); {unchecked} not run (a partial run)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
