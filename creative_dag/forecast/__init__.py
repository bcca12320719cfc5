"""The prelaunch forecast (marts.performance_model, marts.predictions): plain Python on DataFrames.

- targets.py   KPIs, realised values, the trailing account level and the normalised (cube-root) target
- features.py  decision-time inputs: context, attributes, PCA-reduced blocks, as-of CBR evidence
- model.py     as-of rolling LightGBM refits, split-conformal intervals, the evaluation table, saving
"""
