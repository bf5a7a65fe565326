"""What a journal repair found and did: :class:`JournalRepairReport` and its parts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DamagedLine", "JournalRepairReport", "LostStudy", "LostTrial"]


@dataclass(frozen=True)
class DamagedLine:
    """A line of the journal that was dropped.

    Attributes
    ----------
    number
        Its line number (1-based), as :class:`~foldwise.errors.JournalCorruptedError` names it.
    offset
        The byte offset of its first byte.
    reason
        Why it was dropped (not JSON, a checksum that does not match, not an operation).
    held
        What it held, as far as could be told (e.g. ``"an update of trial 3 of study
        'demo/fold-01'"``); ``"(guessed)"`` ends it when the line itself did not say.
    """

    number: int
    offset: int
    reason: str
    held: str


@dataclass(frozen=True)
class LostTrial:
    """A trial whose stored state a damaged line took away; it is now FAIL and runs again.

    Attributes
    ----------
    study
        The Optuna study it belongs to (``"name/fold-02"`` for a fold of optimization
        ``name``).
    number
        Its number within that study (unchanged by the repair).
    line
        The damaged line that cost it.
    state
        Its state before the repair, as far as the intact lines tell (``"COMPLETE"``,
        ``"RUNNING"``, ...).
    """

    study: str
    number: int
    line: int
    state: str


@dataclass(frozen=True)
class LostStudy:
    """A study whose creation line was damaged: dropped with all its trials.

    Attributes
    ----------
    name
        Its name as far as it could be read (``""`` when it could not).
    line
        The damaged line that created it.
    trials
        How many trials it held.
    """

    name: str
    line: int
    trials: int


@dataclass(frozen=True)
class JournalRepairReport:
    """What :func:`foldwise.storage.repair_journal` found, and what it did.

    Attributes
    ----------
    path
        The journal file.
    lines
        Complete lines read.
    damaged
        The lines dropped, in order.
    lost_trials
        Trials now marked FAIL (they do not use the budget and run again), in order.
    lost_studies
        Studies dropped because their creation line was damaged.
    notes
        Other consequences, one sentence each (a study attribute lost, a repeated creation
        of a study that cost nothing, a line that could only be guessed at).
    torn_tail
        Bytes of an unfinished last line (a write cut short; not damage: readers skip it).
    dry_run
        True when nothing was written.
    backup
        Where the damaged journal was kept (``<journal>.damaged-<time>``); None when the
        file was not changed.
    """

    path: Path
    lines: int
    damaged: tuple[DamagedLine, ...] = ()
    lost_trials: tuple[LostTrial, ...] = ()
    lost_studies: tuple[LostStudy, ...] = ()
    notes: tuple[str, ...] = ()
    torn_tail: int = 0
    dry_run: bool = False
    backup: Path | None = None

    @property
    def ok(self) -> bool:
        """True when no line is damaged (nothing to repair)."""
        return not self.damaged

    @property
    def repaired(self) -> bool:
        """True when the journal was rewritten."""
        return self.backup is not None

    @property
    def to_rerun(self) -> int:
        """Trials the next run of the same optimization runs again (lost studies' included)."""
        return len(self.lost_trials) + sum(s.trials for s in self.lost_studies)

    def __str__(self) -> str:
        if self.ok:
            return f"the journal {self.path} is intact ({self.lines} lines): nothing to repair"
        verb = "would drop" if self.dry_run else "dropped"
        out = [f"{self.path}: {len(self.damaged)} damaged line(s) of {self.lines}"]
        out += [f"  {verb} line {d.number} (byte offset {d.offset}): {d.reason}; it held "
                f"{d.held}" for d in self.damaged]
        out += [f"  lost trial {t.number} of study {t.study!r} (was {t.state}; line {t.line})"
                for t in self.lost_trials]
        out += [f"  lost study {s.name or '(name unreadable)'!r} with its {s.trials} trial(s) "
                f"(line {s.line})" for s in self.lost_studies]
        out += [f"  note: {note}" for note in self.notes]
        if self.backup is not None:
            out.append(f"repaired; the damaged journal is kept as {self.backup}")
        elif self.dry_run:
            out.append("dry run: nothing was changed")
        return "\n".join(out)
