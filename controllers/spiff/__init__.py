"""SPIFF's learning engine (paper 003): an actor and 2R + 2 quantile critics choose beta, p(0) and the caption
per image and network state; the risk-neutral contextual-bandit baseline (NCB); training and evaluation on
measured per-image outcomes (outcomes.py). Heavy imports (torch) stay inside the functions."""
