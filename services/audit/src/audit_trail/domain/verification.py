"""Walking the chain: which records were altered, slipped in or removed.

Records are walked in sequence order and checked three ways:
- altered: the record's contents no longer hash to its stored hash;
- inserted: the record is not chained where it stands (a sequence number past the
  chain head, or a previous-hash that is not the hash of the record before it,
  which is what a forged record, or one rewritten with a fresh hash before it,
  looks like);
- missing: a sequence number the chain head has passed is absent.
The chain head is kept beside the records, so removing the newest records, or
appending a perfectly hashed forgery, shows too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .chain import GENESIS_HASH, AuditRecord, ChainHead


@dataclass
class VerificationReport:
    """What a walk of the chain found; holds sequence numbers only, never record contents."""

    head: ChainHead
    records_checked: int = 0
    altered: list[int] = field(default_factory=list)
    inserted: list[int] = field(default_factory=list)
    missing: list[tuple[int, int]] = field(default_factory=list)  # inclusive ranges
    head_mismatch: bool = False

    @property
    def missing_count(self) -> int:
        return sum(last - first + 1 for first, last in self.missing)

    @property
    def intact(self) -> bool:
        return not (self.altered or self.inserted or self.missing or self.head_mismatch)

    @property
    def first_bad_seq(self) -> int | None:
        candidates = self.altered[:1] + self.inserted[:1] + [first for first, _ in self.missing[:1]]
        if self.head_mismatch:
            candidates.append(self.head.seq)
        return min(candidates) if candidates else None

    def summary(self) -> str:
        """A short report for people and logs: counts and sequence numbers only."""
        lines = [
            f"audit chain: {'INTACT' if self.intact else 'BROKEN'}",
            f"records checked: {self.records_checked}",
            f"chain head: seq {self.head.seq}",
            f"altered: {len(self.altered)}{_first_few(self.altered)}",
            f"inserted: {len(self.inserted)}{_first_few(self.inserted)}",
            f"missing: {self.missing_count}{_ranges(self.missing)}",
        ]
        if self.head_mismatch:
            lines.append("chain head: missing, or its hash does not match the record at its seq")
        if not self.intact:
            lines.append(f"first bad seq: {self.first_bad_seq}")
        return "\n".join(lines)


class ChainWalk:
    """Checks records one at a time, in ascending seq order, so a store of any size can be
    streamed through it; `report()` closes the walk against the chain head."""

    def __init__(self, head: ChainHead) -> None:
        self._report = VerificationReport(head=head)
        self._expected_seq = 1
        self._expected_previous: str | None = GENESIS_HASH
        self._last_in_chain: AuditRecord | None = None

    def check(self, record: AuditRecord) -> None:
        report, head = self._report, self._report.head
        report.records_checked += 1
        if record.seq < self._expected_seq:
            report.inserted.append(record.seq)  # numbered before the chain starts
            return
        if record.seq > self._expected_seq:
            self._add_missing(self._expected_seq, min(record.seq - 1, head.seq))
            # The gap explains a broken link here; it is not a second finding.
            self._expected_previous = None
        self._expected_seq = record.seq + 1
        if record.seq > head.seq:
            report.inserted.append(record.seq)
            return
        self._last_in_chain = record
        if record.recomputed_hash() != record.hash:
            report.altered.append(record.seq)
        elif self._expected_previous is not None and record.previous_hash != self._expected_previous:
            report.inserted.append(record.seq)
            # The record after a slipped-in one links to what it replaced: one finding, not two.
            self._expected_previous = None
            return
        self._expected_previous = record.hash

    def report(self) -> VerificationReport:
        report, head, last = self._report, self._report.head, self._last_in_chain
        last_seq = last.seq if last is not None else 0
        if last_seq < head.seq:
            self._add_missing(last_seq + 1, head.seq)  # the newest records are gone
        elif last is not None and last.hash != head.hash:
            report.head_mismatch = True
        return report

    def _add_missing(self, first: int, last: int) -> None:
        if first <= last:
            self._report.missing.append((first, last))


def verify_chain(records: Iterable[AuditRecord], head: ChainHead) -> VerificationReport:
    """Check `records` (ascending seq order) against the chain head."""
    walk = ChainWalk(head)
    for record in records:
        walk.check(record)
    return walk.report()


def _first_few(seqs: list[int], limit: int = 10) -> str:
    if not seqs:
        return ""
    shown = ", ".join(str(s) for s in seqs[:limit])
    return f" (seq {shown}{', ...' if len(seqs) > limit else ''})"


def _ranges(ranges: list[tuple[int, int]], limit: int = 10) -> str:
    if not ranges:
        return ""
    shown = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges[:limit])
    return f" (seq {shown}{', ...' if len(ranges) > limit else ''})"
