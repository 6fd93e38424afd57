"""Quantization: post-training calibration, quantization-aware fine-tuning, Q/DQ conversion.

Backed by NNCF (see docs/decisions.md for why). Nothing heavy is imported here: `edgekd.quant.nncf_quant`
imports nncf and torch when a quantizer is actually built.

>>> from edgekd.quant.nncf_quant import quantize_ptq
>>> qmodel = quantize_ptq(model, calibration_batches, fallback_modules=["head"])
"""
