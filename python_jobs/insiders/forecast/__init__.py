"""Forecasts of customer behaviour: repeat purchases and spend per purchase (customer lifetime value)."""
