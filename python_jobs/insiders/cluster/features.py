"""Feature matrices: the columns the model uses, and the transform fitted once and saved with the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

CLIP_QUANTILES = (0.005, 0.995)


def _log1p_nonnegative(values: np.ndarray) -> np.ndarray:
    return np.log1p(np.clip(values, 0, None))


class QuantileClipper(TransformerMixin, BaseEstimator):
    """Clips each column to quantiles learned in `fit`, so that a handful of extreme customers (an 80,000-unit
    order, returns of goods bought before the data starts) cannot claim a segment of their own."""

    def __init__(self, lower: float = CLIP_QUANTILES[0], upper: float = CLIP_QUANTILES[1]) -> None:
        self.lower = lower
        self.upper = upper

    def fit(self, values: np.ndarray, y: object = None) -> QuantileClipper:
        self.low_ = np.quantile(values, self.lower, axis=0)
        self.high_ = np.quantile(values, self.upper, axis=0)
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        return np.clip(values, self.low_, self.high_)


def feature_matrix(features: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """The model's columns as floats; a missing ratio (no items bought) counts as 0."""
    return features.loc[:, list(columns)].astype(float).fillna(0.0).to_numpy()


def make_preprocessor() -> Pipeline:
    """log1p, clip the extremes, standard scaling: after the log, money and counts are close to symmetric."""
    return Pipeline([
        ("log1p", FunctionTransformer(_log1p_nonnegative, feature_names_out="one-to-one")),
        ("clip", QuantileClipper()),
        ("scale", StandardScaler()),
    ])


def profile_space(matrix: np.ndarray) -> np.ndarray:
    """Log features without fitted parameters: the space where profiles of different fits can be compared."""
    return _log1p_nonnegative(matrix)
