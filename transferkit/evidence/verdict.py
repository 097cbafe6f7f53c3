"""The plain verdict at the end of a comparison: what to use on this data, and why.

Why paired: every arm runs on the same splits with the same seeds, so the draw of examples, which
moves every arm's score by several points at small sizes, is shared. Differences taken seed by seed
cancel that shared swing; unpaired means ± sd keep it in, and can call an arm "within the spread"
of the best while it loses on every seed.

The rule, in order:

1. The leader is the arm with the best mean score over seeds.
2. Two arms are compared on the seeds both ran: d_i = score_a - score_b in points, reported as
   "paired over n seeds: +mean ± sd, won w/n" (sd of the d_i, wins counted for a).
3. Two arms are *as good as each other* when |mean d| <= ``TIE_MARGIN`` (0.5 points), or, with two
   seeds or more, when |mean d| <= sd of the d_i and neither arm won on every seed. With one seed a
   difference carries no spread: only the margin counts, and the verdict says so.
   Why not a paired t-test: with 3 seeds ``ttest_rel`` often cannot reject a 3/3 loss of several
   points (differences 3, 5, 9: p = 0.09), and "not significant" is no evidence that two arms are as
   good. Its p-value (>= 3 seeds) is recorded in results.json beside the differences, not used to decide.
4. Cost is training time (mean ``train_seconds``). Among the arms as good as the leader the fastest
   is recommended. Its trainable parameters are mentioned only when they are fewer than the leader's.
5. Transfer's margin over the same network from scratch is given paired, by the same rule; when
   transfer is not as good as the leader the verdict says plainly that it did not win.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TIE_MARGIN = 0.5  # points: a gap too small to act on; under 200 test examples only an exact tie is this close
_EXACT = 1e-9  # per-seed differences smaller than this are ties (float noise from metric * 100)


@dataclass
class Paired:
    """Per-seed differences ``a - b`` (points) between two arms on the seeds both ran."""

    a: str
    b: str
    diffs: dict[int, float]

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.diffs.values())))

    @property
    def sd(self) -> float | None:
        return float(np.std(list(self.diffs.values()), ddof=1)) if self.n > 1 else None

    @property
    def wins(self) -> int:
        return sum(d > _EXACT for d in self.diffs.values())

    @property
    def losses(self) -> int:
        return sum(d < -_EXACT for d in self.diffs.values())

    @property
    def p_value(self) -> float | None:
        """Two-sided paired t-test (``ttest_rel``), recorded only: see the module docstring."""
        if self.n < 3 or not self.sd:
            return None
        from scipy.stats import ttest_1samp  # ttest_rel(a, b) is ttest_1samp(a - b, 0)

        return float(ttest_1samp(list(self.diffs.values()), 0.0).pvalue)

    def within_margin(self) -> bool:
        return abs(self.mean) <= TIE_MARGIN + _EXACT

    def as_good(self) -> bool:
        if self.within_margin():
            return True
        one_sided = self.wins == self.n or self.losses == self.n
        return self.n > 1 and abs(self.mean) <= self.sd and not one_sided

    def describe(self) -> str:
        """'paired over 3 seeds: +6.0 ± 1.2, won 3/3', from ``a``'s side."""
        if self.n == 1:
            return f"one seed: {self.mean:+.1f}, no spread"
        ties = self.n - self.wins - self.losses
        tied = f", {ties} tied" if ties else ""
        return f"paired over {self.n} seeds: {self.mean:+.1f} ± {self.sd:.1f}, won {self.wins}/{self.n}{tied}"

    def cell(self) -> str:
        """The compact form for a table cell: '-4.8 ± 1.2, won 0/3'."""
        if self.n == 1:
            return f"{self.mean:+.1f}"
        return f"{self.mean:+.1f} ± {self.sd:.1f}, won {self.wins}/{self.n}"

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "seeds": list(self.diffs), "differences": list(self.diffs.values()),
                "mean": self.mean, "sd": self.sd, "wins": self.wins, "losses": self.losses, "n": self.n,
                "p_value": self.p_value, "as_good": self.as_good()}


def paired(a, b) -> Paired:
    """Pair two summary rows (``ArmSummary``: ``.arm``, ``.scores`` seed -> score in %) seed by seed."""
    seeds = [s for s in a.scores if s in b.scores]
    if not seeds:
        raise ValueError(f"{a.arm!r} and {b.arm!r} share no seed to pair on (seeds {sorted(a.scores)} vs "
                         f"{sorted(b.scores)}); build the rows with Comparison.summary(), which records per-seed scores.")
    return Paired(a.arm, b.arm, {s: a.scores[s] - b.scores[s] for s in seeds})


def leader_and_pick(rows):
    """The best mean, and the fastest-training arm as good as it (the recommendation)."""
    leader = max(rows, key=lambda r: r.mean)
    tied = [r for r in rows if r is leader or paired(r, leader).as_good()]
    return leader, min(tied, key=lambda r: (r.seconds, -r.mean))


def paired_differences(rows) -> list[Paired]:
    """What results.json records: every arm against the leader, and transfer against scratch."""
    leader, _ = leader_and_pick(rows)
    out = [paired(r, leader) for r in rows if r is not leader]
    transfer, scratch = _transfer(rows), next((r for r in rows if r.kind == "scratch"), None)
    if transfer is not None and scratch is not None:
        out.append(paired(transfer, scratch))
    return out


def _capital(name: str) -> str:
    return name[:1].upper() + name[1:]


def _transfer(rows):
    return max((r for r in rows if r.kind == "transfer"), key=lambda r: r.mean, default=None)


def _recommendation(rows, leader, pick, metric_name: str) -> list[str]:
    if pick is not leader:
        p = paired(pick, leader)
        why = f"within {TIE_MARGIN:g} points" if p.within_margin() else "within the spread of the paired differences"
        text = [f"Use {pick.arm}: it trains in {pick.seconds:.1f}s instead of {leader.seconds:.1f}s, and its "
                f"{metric_name} ({pick.mean:.1f}%) is as good as the best, {leader.arm} ({leader.mean:.1f}%), "
                f"{why} ({p.describe()})."]
        if pick.parameters < leader.parameters:
            text.append(f"It also has fewer trainable parameters ({pick.parameters:,} vs {leader.parameters:,}).")
        return text
    text = [f"Use {pick.arm}: the best {metric_name} here ({pick.mean:.1f}%)."]
    others = [r for r in rows if r is not pick]
    runner = max(others, key=lambda r: r.mean, default=None)
    if runner is not None and runner is not _transfer(rows):  # transfer's own sentence gives its margin
        p = paired(pick, runner)
        if p.as_good():
            text.append(f"{_capital(runner.arm)} is as good ({runner.mean:.1f}%; {pick.arm} vs it, {p.describe()}) but "
                        f"trains in {runner.seconds:.1f}s instead of {pick.seconds:.1f}s.")
        else:
            text.append(f"{_capital(pick.arm)} beats the next best, {runner.arm}, by {p.mean:.1f} points "
                        f"({p.describe()}).")
    return text


def _transfer_sentences(rows, leader, pick) -> list[str]:
    transfer = _transfer(rows)
    if transfer is None:
        return []
    text = []
    if transfer is leader and transfer is not pick:
        text.append(f"Transfer's edge over {pick.arm}, if any, is within the noise, so its extra training time "
                    "buys nothing measurable here.")
    elif transfer is not leader and transfer is not pick:
        p = paired(transfer, leader)
        if p.as_good():
            text.append(f"Transfer is as good as the best ({transfer.arm} vs {leader.arm}, {p.describe()}) but "
                        f"trains in {transfer.seconds:.1f}s instead of {pick.seconds:.1f}s.")
        else:
            text.append(f"Transfer did not win on this data: {transfer.arm} reached {transfer.mean:.1f}%, "
                        f"{-p.mean:.1f} points below {leader.arm} ({p.describe()}).")
    scratch = next((r for r in rows if r.kind == "scratch"), None)
    if scratch is not None:
        p = paired(transfer, scratch)
        if not p.as_good() and p.mean > 0:
            text.append(f"Against the same network trained from scratch, transfer gains {p.mean:.1f} points "
                        f"({p.describe()}).")
        elif not p.as_good():
            text.append(f"The same network trained from scratch did better than transfer here ({scratch.mean:.1f}% "
                        f"vs {transfer.mean:.1f}%; transfer vs scratch, {p.describe()}): pretraining hurt on this data.")
        else:
            text.append(f"Training the same network from scratch did as well as transfer ({scratch.mean:.1f}% vs "
                        f"{transfer.mean:.1f}%; transfer vs scratch, {p.describe()}): pretraining did not help measurably here.")
    return text


def verdict(rows, metric_name: str) -> str:
    """The verdict sentence(s) for summary rows that carry per-seed scores (``Comparison.summary()``)."""
    leader, pick = leader_and_pick(rows)
    sentences = _recommendation(rows, leader, pick, metric_name) + _transfer_sentences(rows, leader, pick)
    if len(rows) > 1 and min(len(r.scores) for r in rows) == 1:
        sentences.append(f"With one seed the differences carry no spread: only a gap of {TIE_MARGIN:g} points or less "
                         "counts as a tie, and another draw of examples could reverse any other; "
                         "CompareConfig(seeds=3) measures the spread.")
    return " ".join(sentences)
