"""YOLO detectors from Ultralytics as edgekd models: build, export side by side, teach a layout student with FGD.

Ultralytics is AGPL-3.0 and an optional extra (`pip install 'edgekd[yolo]'`); nothing here imports it until a
function runs, and it is always imported with its network features switched off (`edgekd.yolo.offline`).

- `edgekd.yolo.models`: YOLOv8 n/s/m/l/x from Ultralytics' bundled YAML (random weights), raw head output,
  neck features (P3/P4/P5) by forward hooks.
- `edgekd.yolo.export_compare`: the same model exported by edgekd and by Ultralytics, parity and latency of both.
- `edgekd.yolo.teacher`: a YOLO teacher for the layout student (FGD on the shared strides, 1×1 adapters), and
  training it on layout data with Ultralytics' own detection loss.
"""
