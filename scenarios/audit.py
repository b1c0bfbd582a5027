"""Privacy audit of a run: who received whose data in plaintext (from the record's ``Messages/``).

``audit_run(path)`` reads every message that crossed an ownership boundary and reports, per receiving
party, which other parties' plaintext kinds it got (ciphertexts do not count), and findings: plaintext
that carries an owner's data (an owner agent, eid ``<mg>:<owner>``, sent in plaintext) or a party's
internal data (its load, forecasts, unit outputs, state of charge) to anybody else. What a strategy hands
on by design (the centralized EMS's forecasts to its operator) shows up as findings too: the audit says
what was revealed, not whether the strategy meant to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ems_controllers.core.channel import audit
from ems_controllers.core.contract import StrategyAudit, StrategyError
from ems_controllers.core.entities import EntityMap
from sims.record_reader import read_attrs, read_messages

INTERNAL_MARKERS = ("load", "forecast", "diesel", "battery", "soc", "pv", "wind", "unit", "problem")
RUN_ATTRS = ("scenario", "strategy", "config", "entity_map")
"""Root attributes every run file has (``runner`` gives them to the recorder); a file without them is no run."""


class NotARunFile(ValueError):
    """An HDF5 file (or any file) that is not a run written by mmg-cosim; the message names it."""


def read_run_attrs(path: str | Path) -> dict[str, Any]:
    """The root attributes of a run file, after checking that it is one (else :class:`NotARunFile`
    naming the file and what it lacks). ``report`` and ``audit`` read a file through this."""
    what = f"{path} is not an mmg-cosim run file"
    try:
        attrs = read_attrs(path)
    except OSError as exc:
        raise NotARunFile(f"{what} (not a readable HDF5 file: {exc})") from None
    except ValueError as exc:  # a json_keys attribute that is not JSON
        raise NotARunFile(f"{what} (unreadable root attributes: {exc})") from None
    missing = [k for k in RUN_ATTRS if k not in attrs]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise NotARunFile(f"{what} (no {', '.join(missing)} attribute{plural})")
    for key in ("config", "entity_map"):
        if not isinstance(attrs[key], dict):
            raise NotARunFile(f"{what} (its {key} attribute is not a JSON object)")
    return attrs


@dataclass
class AuditReport:
    received: dict[str, dict[str, set[str]]]
    findings: list[str] = field(default_factory=list)
    n_messages: int = 0
    n_ciphertext: int = 0
    protocol: StrategyAudit | None = None
    """What the strategy's protocol lets coalitions of parties learn (its contract's ``audit`` hook)."""


def is_internal(kind: str) -> bool:
    k = kind.lower()
    return any(marker in k for marker in INTERNAL_MARKERS)


def audit_messages(messages: list[dict], parties: set[str]) -> AuditReport:
    received = audit(messages)
    report = AuditReport(
        received, n_messages=len(messages), n_ciphertext=sum(1 for m in messages if "ciphertext_bytes" in m)
    )
    for receiver, senders in sorted(received.items()):
        for sender, kinds in sorted(senders.items()):
            if ":" in sender and sender.split(":", 1)[0] in parties:
                report.findings.append(f"{receiver} received owner {sender}'s {sorted(kinds)} in plaintext")
                continue
            internal = sorted(k for k in kinds if is_internal(k))
            if internal and sender in parties:  # a party's data about itself, to somebody else
                report.findings.append(f"{receiver} received {sender}'s internal data {internal} in plaintext")
    return report


def audit_run(path: str | Path) -> AuditReport:
    attrs = read_run_attrs(path)
    emap = attrs.get("entity_map")
    parties = set(EntityMap.from_dict(emap).parties) if emap else set()
    report = audit_messages(read_messages(path), parties)
    report.protocol = _protocol_audit(Path(path), str(attrs.get("strategy", "")))
    return report


def _protocol_audit(path: Path, strategy: str) -> StrategyAudit | None:
    from ems_controllers.registry import get_strategy
    from scenarios.kpis import RunFile

    try:
        hook = get_strategy(strategy).audit_hook()
    except (StrategyError, ImportError, AttributeError):
        return None
    return None if hook is None else hook(RunFile(path))
