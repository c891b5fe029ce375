"""Insiders: customer segmentation on PostgreSQL with dbt and a Python clustering job."""

__version__ = "0.1.0"
