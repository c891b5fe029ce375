"""What it takes to be an Insider, in plain terms: a shallow decision tree on the raw mart columns."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier

from .config import ClusterConfig


@dataclass
class InsiderRule:
    text: str
    n_customers: int
    n_insiders: int
    precision: float
    recall: float


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}".rstrip("0").rstrip(".")


def _describe(bounds: dict[str, list[float | None]], columns: list[str], integer_columns: set[str]) -> str:
    """`a < x <= b` from the tree's thresholds; on whole-number columns the midpoints become `x >= 5`."""
    parts = []
    for column in columns:
        if column not in bounds:
            continue
        low, high = bounds[column]
        if column in integer_columns:
            low_text = f"{column} >= {_number(math.floor(low) + 1)}" if low is not None else None
            high_text = f"{column} <= {_number(math.floor(high))}" if high is not None else None
        else:
            low_text = f"{column} > {_number(low)}" if low is not None else None
            high_text = f"{column} <= {_number(high)}" if high is not None else None
        parts.append(" and ".join(p for p in (low_text, high_text) if p))
    return " and ".join(parts) or "every customer"


def _leaves_under(structure: object, node: int) -> list[int]:
    left, right = structure.children_left[node], structure.children_right[node]
    return [node] if left == -1 else _leaves_under(structure, left) + _leaves_under(structure, right)


def insider_rules(features: pd.DataFrame, is_insider: np.ndarray,
                  config: ClusterConfig) -> tuple[list[InsiderRule], float]:
    """The tree's paths to its Insider leaves, each with coverage, precision and recall; and the tree accuracy."""
    columns = list(config.rule_features)
    matrix = features[columns].astype(float).fillna(0.0).to_numpy()
    integer_columns = {c for i, c in enumerate(columns) if np.all(matrix[:, i] == np.round(matrix[:, i]))}
    tree = DecisionTreeClassifier(max_depth=config.rule_tree_depth, min_samples_leaf=max(5, len(matrix) // 200),
                                  class_weight="balanced", random_state=config.seed).fit(matrix, is_insider)
    accuracy = float((tree.predict(matrix) == is_insider).mean())
    structure = tree.tree_
    leaves = tree.apply(matrix)
    total_insiders = max(1, int(is_insider.sum()))
    rules: list[InsiderRule] = []

    def predicts_insider(node: int) -> bool:
        if structure.children_left[node] == -1:
            return bool(structure.value[node][0].argmax() == 1)
        return predicts_insider(structure.children_left[node]) and predicts_insider(structure.children_right[node])

    def walk(node: int, bounds: dict[str, list[float | None]]) -> None:
        # a split whose every leaf says "Insider" adds words, not meaning: the node is one rule
        if structure.children_left[node] == -1 or predicts_insider(node):
            if not predicts_insider(node):
                return
            covered = np.isin(leaves, _leaves_under(structure, node))
            n_insiders = int(is_insider[covered].sum())
            rules.append(InsiderRule(_describe(bounds, columns, integer_columns), int(covered.sum()), n_insiders,
                                     n_insiders / max(1, int(covered.sum())), n_insiders / total_insiders))
            return
        column = columns[structure.feature[node]]
        threshold = float(structure.threshold[node])
        low, high = bounds.get(column, [None, None])
        left_high = threshold if high is None else min(high, threshold)
        right_low = threshold if low is None else max(low, threshold)
        walk(structure.children_left[node], {**bounds, column: [low, left_high]})
        walk(structure.children_right[node], {**bounds, column: [right_low, high]})

    walk(0, {})
    rules.sort(key=lambda rule: -rule.n_insiders)
    return rules, accuracy
