"""Learned allocation of [P000] Sec. IV: DSAC and the MAPPO baseline on the SAGIN environment (docs/rl.md).

Imports torch only where training needs it: the controllers act in numpy from shipped safetensors weights.
"""
