"""Persons: tracks (one per shot and appearance) grouped by identity across the whole video.

Average-linkage agglomerative clustering of the tracks' dlib embeddings (lipdub.faces.identity): the two
closest groups merge while their mean distance is under the threshold, except that two tracks seen in the
same frame are never one person. A track without an embedding stays a person of its own. A person's id is
the id of its first track, so on a video's first frame (and on a still) a face's track id is its person id.
"""

from __future__ import annotations

import itertools

import numpy as np

from lipdub.faces.types import Face


def co_present(frames: list[list[Face]]) -> set[frozenset[int]]:
    """Pairs of track ids seen in one frame together."""
    pairs: set[frozenset[int]] = set()
    for faces in frames:
        ids = sorted({f.track_id for f in faces})
        pairs.update(frozenset(p) for p in itertools.combinations(ids, 2))
    return pairs


def group_tracks(track_ids: list[int], embeddings: dict[int, np.ndarray], frames: list[list[Face]],
                 threshold: float) -> dict[int, int]:
    """{track id: person id}."""
    groups = [[t] for t in sorted(track_ids)]
    apart = co_present(frames)
    dist = {}
    with_emb = [t for t in track_ids if t in embeddings]
    for a, b in itertools.combinations(with_emb, 2):
        d = float(np.linalg.norm(np.asarray(embeddings[a], np.float32) - np.asarray(embeddings[b], np.float32)))
        dist[frozenset((a, b))] = d

    def linkage(g: list[int], h: list[int]) -> float:
        pairs = [frozenset((a, b)) for a in g for b in h]
        if any(p in apart or p not in dist for p in pairs):
            return np.inf
        return float(np.mean([dist[p] for p in pairs]))

    while len(groups) > 1:
        d, i, j = min((linkage(g, h), i, j) for (i, g), (j, h) in itertools.combinations(enumerate(groups), 2))
        if d >= threshold:
            break
        groups[i] = sorted(groups[i] + groups[j])
        del groups[j]
    return {t: min(g) for g in groups for t in g}
