"""Polynomial least squares with its degree chosen by leave-one-out cross-validation, and ordinary
least-squares prediction intervals: what the memory-versus-batch fit and the memory projection share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_DEGREE = 3


@dataclass(frozen=True)
class Fit:
    degree: int
    coefficients: list[float]  # in powers of (x - offset), constant term first
    loocv_rmse: float | None  # root mean squared leave-one-out error; None with too few points for a fold
    r2: float | None
    residual_dof: int
    offset: float = 0.0  # x is centred on it before the powers are taken (years: a well-conditioned basis)

    def predict(self, x: np.ndarray | float) -> np.ndarray:
        return np.polynomial.polynomial.polyval(np.asarray(x, dtype=float) - self.offset, self.coefficients)


def _design(x: np.ndarray, degree: int) -> np.ndarray:
    return np.vander(x.astype(float), degree + 1, increasing=True)


def _loocv(x: np.ndarray, y: np.ndarray, degree: int) -> np.ndarray | None:
    """Squared errors of the leave-one-out predictions; None when a fold would be underdetermined."""
    if len(x) - 1 < degree + 1:
        return None
    errors = []
    for left in range(len(x)):
        keep = np.arange(len(x)) != left
        coefficients, *_ = np.linalg.lstsq(_design(x[keep], degree), y[keep], rcond=None)
        errors.append(float((_design(x[left : left + 1], degree) @ coefficients)[0] - y[left]) ** 2)
    return np.asarray(errors)


def fit_polynomial(x: np.ndarray, y: np.ndarray, center: bool = False, max_degree: int = MAX_DEGREE) -> Fit:
    """A polynomial of degree 0 to ``max_degree`` (at most distinct points - 1), chosen by leave-one-out
    cross-validation with the one-standard-error rule: the lowest degree whose mean squared error is
    within one standard error of the lowest (a higher degree must earn its coefficient; noise alone often
    favours it by a little). With points enough for no fold, degree 1 (a line through two points)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    offset = float(x.mean()) if center else 0.0
    shifted = x - offset
    distinct = len(np.unique(x))
    scored = {d: _loocv(shifted, y, d) for d in range(0, min(max_degree, distinct - 1) + 1)}
    valid = {d: e for d, e in scored.items() if e is not None}
    if valid:
        best = min(valid, key=lambda d: float(valid[d].mean()))
        limit = valid[best].mean() + valid[best].std(ddof=1) / np.sqrt(len(valid[best]))
        degree = min(d for d, e in valid.items() if e.mean() <= limit)
    else:
        degree = min(1, distinct - 1)
    errors = valid.get(degree)
    rmse = float(np.sqrt(errors.mean())) if errors is not None else None
    coefficients, *_ = np.linalg.lstsq(_design(shifted, degree), y, rcond=None)
    residuals = y - _design(shifted, degree) @ coefficients
    total = float(np.sum(np.square(y - y.mean())))
    r2 = 1 - float(np.sum(np.square(residuals))) / total if total > 0 else None
    return Fit(degree, [float(c) for c in coefficients], rmse, r2, len(x) - degree - 1, offset)


def prediction_interval(fit: Fit, x: np.ndarray, y: np.ndarray, at: np.ndarray, confidence: float) -> np.ndarray | None:
    """Lower and upper bounds (2 x len(at)) of the ordinary least-squares prediction interval of a new
    observation at each of ``at``; None without residual degrees of freedom."""
    from scipy import stats

    if fit.residual_dof < 1:
        return None
    design = _design(np.asarray(x, dtype=float) - fit.offset, fit.degree)
    residuals = np.asarray(y, dtype=float) - design @ np.asarray(fit.coefficients)
    sigma2 = float(np.sum(np.square(residuals))) / fit.residual_dof
    inverse = np.linalg.pinv(design.T @ design)
    points = _design(np.asarray(at, dtype=float) - fit.offset, fit.degree)
    spread = np.sqrt(sigma2 * (1 + np.einsum("ij,jk,ik->i", points, inverse, points)))
    t = float(stats.t.ppf(0.5 + confidence / 2, fit.residual_dof))
    centre = points @ np.asarray(fit.coefficients)
    return np.vstack([centre - t * spread, centre + t * spread])
