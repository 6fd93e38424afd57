"""The `ibvs` task: a CNN student learns an analytic visual-servoing controller (NSER-IBVS)."""
