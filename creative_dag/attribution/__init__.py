"""Element attribution: counterfactual image edits (edits.py) and the forecast change they cause (effects.py)."""
