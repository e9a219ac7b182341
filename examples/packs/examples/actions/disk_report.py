"""Report disk usage for a few mount points (example python-script action)."""

from __future__ import annotations

import shutil
from typing import Any

from st2common.runners.base_action import Action


class DiskReport(Action):
    def run(
        self, mounts: list[str] | None = None, warn_percent: int | None = None
    ) -> dict[str, Any]:
        # Settings come from the pack config (configs/examples.yaml), with the
        # defaults of config.schema.yaml filled in; parameters override them.
        mounts = mounts or self.config.get("mounts") or ["/"]
        limit = warn_percent or self.config.get("warn_percent", 80)

        report: dict[str, Any] = {}
        flagged: list[str] = []
        for mount in mounts:
            try:
                usage = shutil.disk_usage(mount)
            except OSError as exc:
                report[mount] = {"error": exc.strerror or str(exc)}
                flagged.append(mount)
                continue
            # Like df's Use%: space reserved for root does not count as available.
            usable = usage.used + usage.free
            used_percent = round(usage.used * 100 / usable, 1) if usable else 0.0
            report[mount] = {
                "total_bytes": usage.total,
                "used_bytes": usage.used,
                "free_bytes": usage.free,
                "used_percent": used_percent,
            }
            if used_percent >= limit:
                flagged.append(mount)

        self.logger.info("checked %d mount(s), %d flagged", len(mounts), len(flagged))
        return {"warn_percent": limit, "mounts": report, "flagged": flagged}
