"""Persons: tracks (one per shot and appearance) grouped by identity across the whole video.

Average-linkage agglomerative clustering of the tracks' dlib embeddings (lipdub.faces.identity): the two
closest groups merge while their mean distance is under the threshold, except that two tracks seen in the
same frame are never one person. A track without an embedding stays a person of its own. A person's id is
the id of its first track, so on a video's first frame (and on a still) a face's track id is its person id.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from lipdub.faces.types import Face


def co_present(frames: list[list[Face]]) -> set[frozenset[int]]:
    """Pairs of track ids seen in one frame together."""
    pairs: set[frozenset[int]] = set()
    for faces in frames:
        ids = sorted({f.track_id for f in faces})
        pairs.update(frozenset(p) for p in itertools.combinations(ids, 2))
    return pairs


def group_tracks(track_ids: list[int], embed: Callable[[int], np.ndarray | None], frames: list[list[Face]],
                 threshold: float) -> dict[int, int]:
    """{track id: person id}. `embed(track_id)` gives a track's embedding (None: unknown); it is asked only
    for tracks that could join another (a single shot of people always on screen together costs nothing)."""
    groups = [[t] for t in sorted(track_ids)]
    apart = co_present(frames)
    candidates = [frozenset(p) for p in itertools.combinations(sorted(track_ids), 2) if frozenset(p) not in apart]
    embeddings = {t: e for t in sorted({t for p in candidates for t in p}) if (e := embed(t)) is not None}
    dist = {p: float(np.linalg.norm(embeddings[a] - embeddings[b])) for p in candidates
            if (a := min(p)) in embeddings and (b := max(p)) in embeddings}

    def linkage(g: list[int], h: list[int]) -> float:
        pairs = [frozenset((a, b)) for a in g for b in h]
        if any(p not in dist for p in pairs):  # seen together, or an identity unknown
            return np.inf
        return float(np.mean([dist[p] for p in pairs]))

    while len(groups) > 1:
        d, i, j = min((linkage(g, h), i, j) for (i, g), (j, h) in itertools.combinations(enumerate(groups), 2))
        if d >= threshold:
            break
        groups[i] = sorted(groups[i] + groups[j])
        del groups[j]
    return {t: min(g) for g in groups for t in g}
