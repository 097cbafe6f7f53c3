"""The plain verdict at the end of a comparison: what to use on this data, and why.

Rules, in order: the arm with the best mean score leads; an arm counts as "as good" when its
mean is within the larger of the two spreads (one standard deviation over seeds) of the
leader's; among arms as good as the leader, the cheapest to train is recommended, so a classic
baseline within the spread of transfer is recommended over it. Transfer's margin over the same
network from scratch is always stated, and a loss of transfer is stated plainly.
"""
from __future__ import annotations

COST_ORDER = {"classic": 0, "transfer": 1, "scratch": 2}


def _as_good(a, b) -> bool:
    return abs(a.mean - b.mean) <= max(a.sd, b.sd)


def verdict(rows, metric_name: str) -> str:
    leader = max(rows, key=lambda r: r.mean)
    tied = [r for r in rows if _as_good(r, leader)]
    pick = min(tied, key=lambda r: (COST_ORDER[r.kind], r.seconds))
    transfer = max((r for r in rows if r.kind == "transfer"), key=lambda r: r.mean, default=None)
    scratch = next((r for r in rows if r.kind == "scratch"), None)
    sentences = []
    if pick is leader:
        sentences.append(f"Use {pick.arm}: the best {metric_name} here ({pick.mean:.1f}%).")
    else:
        sentences.append(
            f"Use {pick.arm}: its {metric_name} ({pick.mean:.1f}%) is within the spread of the best, "
            f"{leader.arm} ({leader.mean:.1f}%), and it trains in {pick.seconds:.1f}s instead of {leader.seconds:.1f}s "
            f"with {pick.parameters:,} trainable parameters instead of {leader.parameters:,}."
        )
    if transfer is not None:
        if transfer is leader and pick is leader:
            others = [r for r in rows if r is not transfer]
            runner = max(others, key=lambda r: r.mean) if others else None
            if runner is not None:
                sentences.append(f"Transfer leads the next best, {runner.arm}, by {transfer.mean - runner.mean:.1f} points.")
        elif transfer is not leader and not _as_good(transfer, leader):
            sentences.append(f"Transfer did not win on this data: {transfer.arm} reached {transfer.mean:.1f}%, "
                             f"{leader.mean - transfer.mean:.1f} points below {leader.arm}.")
        if scratch is not None:
            gap = transfer.mean - scratch.mean
            if gap > max(transfer.sd, scratch.sd):
                sentences.append(f"Against the same network trained from scratch, transfer gains {gap:.1f} points.")
            elif -gap > max(transfer.sd, scratch.sd):
                sentences.append(f"The same network trained from scratch did better than transfer here "
                                 f"({scratch.mean:.1f}% vs {transfer.mean:.1f}%): pretraining hurt on this data.")
            else:
                sentences.append(f"Training the same network from scratch did as well as transfer within the spread "
                                 f"({scratch.mean:.1f}% vs {transfer.mean:.1f}%): pretraining did not help on this data.")
    return " ".join(sentences)
