"""Geometric confirmation of candidate pairs: local features that agree on one similarity.

Hash distance alone cannot tell a 5 degree rotation of a photo from another photo of the same
scene: both land 12-20 bits away. What can is whether hundreds of local features of one image
map onto the other by a single rotation + uniform scale + shift. ORB keypoints are matched with
Lowe's ratio test, a similarity transform is fitted with RANSAC, and the pair is confirmed
when enough matches agree, cover a good part of both images, and the transform is one a copy
goes through (small rotation, moderate scale). A different garment on the same backdrop
shares the backdrop but not a transform that carries the garment's features with it.

OpenCV is imported lazily: ``dataops --help`` and every stage that does not check geometry
never load it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

FEATURES = 500
"""ORB keypoints per image (at the working size of ``views.WORK_SIDE``)."""
RATIO = 0.8
"""Lowe's ratio: a match must be this much closer than the second best."""
MIN_INLIERS = 30
MIN_INLIER_SHARE = 0.3
"""Of the ratio-test matches, the share RANSAC keeps."""
MIN_COVERAGE = 0.2
"""Share of the smaller image's area spanned by the inliers' bounding box."""
MAX_ROTATION_DEG = 12.0
SCALE_RANGE = (0.6, 1.7)
REPROJECTION_PX = 4.0


@dataclass(frozen=True, slots=True)
class Features:
    """ORB keypoints of one image: positions (n, 2) in working pixels, descriptors (n, 32)."""

    points: np.ndarray
    descriptors: np.ndarray
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """Outcome of one geometric check, with the numbers that decided it."""

    ok: bool
    inliers: int
    matches: int
    rotation_deg: float = 0.0
    scale: float = 1.0
    coverage: float = 0.0


def _cv2() -> Any:
    import cv2

    cv2.setNumThreads(1)
    return cv2


def features(gray: np.ndarray, *, mirror: bool = False) -> Features:
    """ORB features of an 8-bit grayscale array (H, W), optionally of its mirror image."""
    cv2 = _cv2()
    img = np.ascontiguousarray(gray[:, ::-1] if mirror else gray)
    orb = cv2.ORB_create(nfeatures=FEATURES, fastThreshold=10)
    keypoints, descriptors = orb.detectAndCompute(img, None)
    if descriptors is None:
        descriptors = np.empty((0, 32), np.uint8)
    points = np.array([kp.pt for kp in keypoints], dtype=np.float32).reshape(-1, 2)
    return Features(points, descriptors, int(gray.shape[1]), int(gray.shape[0]))


def _coverage(points: np.ndarray, width: int, height: int) -> float:
    span = points.max(axis=0) - points.min(axis=0)
    return float(span[0] * span[1]) / float(max(1, width * height))


def verify(a: Features, b: Features) -> Verdict:
    """Whether ``b`` is ``a`` after a copy-like similarity transform (see module doc)."""
    if a.descriptors.shape[0] < MIN_INLIERS or b.descriptors.shape[0] < MIN_INLIERS:
        return Verdict(False, 0, 0)
    cv2 = _cv2()
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    knn = matcher.knnMatch(a.descriptors, b.descriptors, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
    if len(good) < MIN_INLIERS:
        return Verdict(False, 0, len(good))
    src = a.points[[m.queryIdx for m in good]]
    dst = b.points[[m.trainIdx for m in good]]
    model, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=REPROJECTION_PX, maxIters=2000
    )
    if model is None:
        return Verdict(False, 0, len(good))
    keep = mask.ravel().astype(bool)
    inliers = int(keep.sum())
    scale = math.hypot(float(model[0, 0]), float(model[1, 0]))
    rotation = math.degrees(math.atan2(float(model[1, 0]), float(model[0, 0])))
    coverage = min(
        _coverage(src[keep], a.width, a.height) if inliers else 0.0,
        _coverage(dst[keep], b.width, b.height) if inliers else 0.0,
    )
    ok = (
        inliers >= MIN_INLIERS
        and inliers >= MIN_INLIER_SHARE * len(good)
        and coverage >= MIN_COVERAGE
        and abs(rotation) <= MAX_ROTATION_DEG
        and SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]
    )
    return Verdict(ok, inliers, len(good), rotation, scale, coverage)
